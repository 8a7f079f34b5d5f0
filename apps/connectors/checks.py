"""`manage.py check` (and every start): the platform's connector endpoints are sane, so a typo in
settings.PSP_ENDPOINTS or SIMULATOR_URL is caught at deploy time instead of at the first
payment (where endpoints.resolve would refuse it anyway)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register

from apps.connectors import endpoints


def _problem(url: str, *, live: bool) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in (("https",) if live else ("https", "http")):
        return "must use https" if live else "must use http(s)"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return "must not carry credentials, a query or a fragment"
    return None


@register()
def psp_endpoints_check(app_configs, **kwargs) -> list[Error]:
    errors = []
    table = getattr(settings, "PSP_ENDPOINTS", {})
    for connector_type, modes in table.items():
        for mode, names in modes.items():
            if mode not in ("live", "test"):
                errors.append(
                    Error(
                        f"PSP_ENDPOINTS[{connector_type!r}]: unknown mode {mode!r}.",
                        id="connectors.E001",
                    )
                )
                continue
            for name, template in names.items():
                where = f"PSP_ENDPOINTS[{connector_type!r}][{mode!r}][{name!r}]"
                if name == endpoints.SIMULATOR:
                    errors.append(
                        Error(
                            f"{where}: 'simulator' comes from SIMULATOR_URL.", id="connectors.E002"
                        )
                    )
                    continue
                sample = template.replace(endpoints.LIVE_URL_PREFIX_PLACEHOLDER, "prefix")
                problem = _problem(sample, live=mode == "live")
                if problem:
                    errors.append(Error(f"{where} {problem}.", id="connectors.E003"))
    simulator = getattr(settings, "SIMULATOR_URL", "") or ""
    if simulator:
        problem = _problem(simulator, live=False)
        if problem:
            errors.append(Error(f"SIMULATOR_URL {problem}.", id="connectors.E004"))
    return errors
