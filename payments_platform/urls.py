from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from apps.core import health
from apps.core.api.exceptions import unknown_api_url
from apps.events.api.views import psp_webhook_receive
from apps.observability.views import metrics_view

handler404 = "apps.core.api.exceptions.handler404"
handler500 = "apps.core.api.exceptions.handler500"

v1 = [
    path(
        "openapi.json",
        SpectacularJSONAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="openapi",
    ),
    path("", include("apps.merchants.api.urls")),
    path("", include("apps.vault.api.urls")),
    path("", include("apps.intents.api.urls")),
    path("", include("apps.connectors.api.urls")),
    path("", include("apps.routing.api.urls")),
    path("", include("apps.events.api.urls")),
    path("", include("apps.payouts.api.urls")),
    path("", include("apps.ledger.api.urls")),
    path("", include("apps.risk.api.urls")),
    path("", include("apps.disputes.api.urls")),
    # last: any other /v1/ URL is the envelope's 404 also with DEBUG on (where Django would
    # otherwise answer its HTML debug page, as under `make run`)
    re_path(r"", unknown_api_url),
]

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("v1/", include(v1)),
    path("webhooks/psp/<str:connector_id>", psp_webhook_receive, name="psp_webhook"),
    re_path(r"^webhooks/", unknown_api_url),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="openapi", authentication_classes=[], permission_classes=[]
        ),
        name="docs",
    ),
    path(
        "docs/redoc/",
        SpectacularRedocView.as_view(
            url_name="openapi", authentication_classes=[], permission_classes=[]
        ),
    ),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
]
