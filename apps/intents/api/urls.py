from django.urls import path

from apps.intents.api import views

urlpatterns = [
    path("payment_intents", views.PaymentIntentListCreateApi.as_view()),
    path("payment_intents/<str:intent_id>", views.PaymentIntentRetrieveApi.as_view()),
    path("payment_intents/<str:intent_id>/confirm", views.PaymentIntentConfirmApi.as_view()),
    path("payment_intents/<str:intent_id>/capture", views.PaymentIntentCaptureApi.as_view()),
    path("payment_intents/<str:intent_id>/cancel", views.PaymentIntentCancelApi.as_view()),
    path("payment_intents/<str:intent_id>/return", views.PaymentIntentReturnApi.as_view()),
    path("refunds", views.RefundListCreateApi.as_view()),
    path("refunds/<str:refund_id>", views.RefundRetrieveApi.as_view()),
]
