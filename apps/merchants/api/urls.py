from django.urls import path

from apps.merchants.api import seller_views, views

urlpatterns = [
    path("account", views.AccountRetrieveUpdateApi.as_view()),
    path("api_keys", views.ApiKeyListCreateApi.as_view()),
    path("api_keys/<str:key_id>/roll", views.ApiKeyRollApi.as_view()),
    path("api_keys/<str:key_id>/revoke", views.ApiKeyRevokeApi.as_view()),
    path("sellers", seller_views.SellerListCreateApi.as_view()),
    path("sellers/<str:seller_id>", seller_views.SellerRetrieveApi.as_view()),
]
