from django.urls import path

from apps.risk.api import views

urlpatterns = [
    path("radar/value_lists", views.ValueListListCreateApi.as_view()),
    path("radar/value_lists/<str:value_list_id>", views.ValueListRetrieveDeleteApi.as_view()),
    path("radar/value_list_items", views.ValueListItemListCreateApi.as_view()),
    path("radar/value_list_items/<str:item_id>", views.ValueListItemRetrieveDeleteApi.as_view()),
    path("radar/rules", views.RuleListCreateApi.as_view()),
    path("radar/rules/<str:rule_id>", views.RuleRetrieveUpdateApi.as_view()),
    path("radar/rules/<str:rule_id>/disable", views.RuleDisableApi.as_view()),
    path("radar/rules/<str:rule_id>/test", views.RuleTestApi.as_view()),
]
