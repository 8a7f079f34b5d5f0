from django.urls import path

from apps.payouts.api import views

urlpatterns = [
    path("payouts", views.PayoutListCreateApi.as_view()),
    path("payouts/<str:payout_id>", views.PayoutRetrieveApi.as_view()),
    path("payouts/<str:payout_id>/cancel", views.PayoutCancelApi.as_view()),
]
