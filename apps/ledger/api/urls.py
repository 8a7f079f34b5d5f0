from django.urls import path

from apps.ledger.api import views

urlpatterns = [
    path("balance", views.BalanceRetrieveApi.as_view()),
    path("balance_transactions", views.BalanceTransactionListApi.as_view()),
]
