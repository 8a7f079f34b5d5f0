from django.urls import path

from apps.events.api import views

urlpatterns = [
    path("events", views.EventListApi.as_view()),
    path("events/<str:event_id>", views.EventRetrieveApi.as_view()),
    path("webhook_endpoints", views.WebhookEndpointListCreateApi.as_view()),
    path(
        "webhook_endpoints/<str:endpoint_id>",
        views.WebhookEndpointRetrieveUpdateDeleteApi.as_view(),
    ),
    path(
        "webhook_endpoints/<str:endpoint_id>/roll_secret",
        views.WebhookEndpointRollSecretApi.as_view(),
    ),
    path("webhook_endpoints/<str:endpoint_id>/replay", views.WebhookEndpointReplayApi.as_view()),
    path("webhook_endpoints/<str:endpoint_id>/deliveries", views.WebhookDeliveryListApi.as_view()),
    path(
        "webhook_endpoints/<str:endpoint_id>/deliveries/<str:delivery_id>/replay",
        views.WebhookDeliveryReplayApi.as_view(),
    ),
]
