from django.urls import path

from apps.routing.api import views

urlpatterns = [
    path("routing_profiles", views.RoutingProfileListCreateApi.as_view()),
    path("routing_profiles/<str:profile_id>", views.RoutingProfileRetrieveUpdateApi.as_view()),
    path(
        "routing_profiles/<str:profile_id>/versions",
        views.RoutingProfileVersionListCreateApi.as_view(),
    ),
    path(
        "routing_profiles/<str:profile_id>/versions/<int:number>",
        views.RoutingProfileVersionRetrieveApi.as_view(),
    ),
    path("routing_profiles/<str:profile_id>/activate", views.RoutingProfileActivateApi.as_view()),
    path(
        "routing_profiles/<str:profile_id>/deactivate", views.RoutingProfileDeactivateApi.as_view()
    ),
]
