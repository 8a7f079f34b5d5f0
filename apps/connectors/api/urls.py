from django.urls import path

from apps.connectors.api import views

urlpatterns = [
    path("connectors", views.ConnectorListCreateApi.as_view()),
    path("connectors/<str:connector_id>", views.ConnectorRetrieveUpdateApi.as_view()),
]
