from django.urls import path

from apps.disputes.api import views

urlpatterns = [
    path("disputes", views.DisputeListApi.as_view()),
    path("disputes/<str:dispute_id>", views.DisputeRetrieveUpdateApi.as_view()),
    path("disputes/<str:dispute_id>/close", views.DisputeCloseApi.as_view()),
    path("files", views.FileCreateApi.as_view()),
]
