from django.urls import path

from apps.merchants.api import views

urlpatterns = [
    path("account", views.AccountRetrieveUpdateApi.as_view()),
    path("api_keys", views.ApiKeyListCreateApi.as_view()),
    path("api_keys/<str:key_id>/roll", views.ApiKeyRollApi.as_view()),
    path("api_keys/<str:key_id>/revoke", views.ApiKeyRevokeApi.as_view()),
]
