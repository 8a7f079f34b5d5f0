from django.urls import path

from apps.vault.api import views

urlpatterns = [
    path("payment_methods", views.PaymentMethodCreateApi.as_view()),
    path("payment_methods/<str:payment_method_id>", views.PaymentMethodRetrieveApi.as_view()),
]
