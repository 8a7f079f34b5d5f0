"""Where a connector's requests go: the platform's choice, never a merchant's.

A connector's requests carry card numbers, CVCs and the merchant's PSP credentials, so their
destination is platform configuration (`settings.PSP_ENDPOINTS`): per connector type and mode,
a few named endpoints, each a base URL the operators wrote. A connector stores only the *name*
of one of them (`endpoint`) and, where the PSP needs one, a validated option that goes into that
URL (Adyen's live URL prefix; the simulator's account name). The URL is built here, from
settings, every time a request is about to go out, and checked once more against the endpoint's
host: a stored row can never name a host of its own, and a row that no longer fits the
configuration (tampered, or the settings changed) is refused before anything is sent.

Documented hosts (see settings.PSP_ENDPOINTS):
- Stripe, live and test mode alike: https://api.stripe.com (https://docs.stripe.com/api, "Base
  URL"; the API key decides the mode).
- Adyen Checkout, test: https://checkout-test.adyen.com (https://docs.adyen.com/api-explorer/
  Checkout/overview); live: https://{PREFIX}-checkout-live.adyenpayments.com/checkout, with the
  company's live URL prefix from the Customer Area (https://docs.adyen.com/development-resources/
  live-endpoints#live-url-prefix).
- The PSP simulator (test mode only, when SIMULATOR_URL is set): <SIMULATOR_URL>/<type>/<account>
  (docs/psp-simulator.md).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.errors import PSPIntegrationError
from apps.psp_adapters.contract import ConnectorConfig

PRODUCTION = "production"
TEST = "test"
SIMULATOR = "simulator"

BASE_URL_REFUSED = (
    "base_url cannot be set: where a connector's requests (and card data) go is the platform's "
    "choice. Choose one of the platform's endpoints for the connector type and mode with "
    "`endpoint` (and, for Adyen live, `live_url_prefix`)."
)

LIVE_URL_PREFIX_PLACEHOLDER = "{live_url_prefix}"
SIMULATOR_ACCOUNT_PLACEHOLDER = "{simulator_account}"

# "<prefix>-checkout-live" is one DNS label (at most 63 characters): letters, digits and inner
# hyphens only, so a prefix can never add a dot, a port, a path or credentials to the host
LIVE_URL_PREFIX_MAX_LENGTH = 63 - len("-checkout-live")
_LIVE_URL_PREFIX = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
# the simulator's connector names (docs/psp-simulator.md): one path segment
SIMULATOR_ACCOUNT_MAX_LENGTH = 64
_SIMULATOR_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class EndpointRefused(PSPIntegrationError):
    """A connector whose endpoint is not one the platform allows for its type and mode. Nothing
    was sent; retrying cannot help until the connector (or the configuration) is fixed."""

    default_code = "connector_endpoint_refused"

    def __init__(self, message: str, *, param: str | None = "endpoint") -> None:
        super().__init__(message, permanent=True, param=param)


def _mode(livemode: bool) -> str:
    return "live" if livemode else "test"


def allowed(connector_type: str, livemode: bool) -> dict[str, str]:
    """The endpoint names a connector of this type and mode may use, with their URL
    templates, in the platform's order (the first is the default)."""
    configured = getattr(settings, "PSP_ENDPOINTS", {}).get(connector_type, {})
    table = dict(configured.get(_mode(livemode), {}))
    simulator = (getattr(settings, "SIMULATOR_URL", "") or "").rstrip("/")
    if not livemode and simulator:
        table[SIMULATOR] = f"{simulator}/{connector_type}/{SIMULATOR_ACCOUNT_PLACEHOLDER}"
    else:
        table.pop(SIMULATOR, None)  # never in live mode, whatever the settings say
    return table


def default(connector_type: str, livemode: bool) -> str | None:
    """The PSP's own endpoint for the mode: production in live mode, the PSP's test host in
    test mode (the simulator is chosen explicitly)."""
    names = allowed(connector_type, livemode)
    preferred = PRODUCTION if livemode else TEST
    if preferred in names:
        return preferred
    return next(iter(names), None)


def check_live_url_prefix(value: object) -> str | None:
    """None when `value` is a well-formed Adyen live URL prefix, else why not."""
    if not isinstance(value, str) or not value:
        return (
            "live_url_prefix is required for an Adyen live connector (Customer Area: "
            "Developers, API URLs)."
        )
    if len(value) > LIVE_URL_PREFIX_MAX_LENGTH or not _LIVE_URL_PREFIX.match(value):
        return (
            f"live_url_prefix must be 1 to {LIVE_URL_PREFIX_MAX_LENGTH} letters, digits and "
            "inner hyphens, e.g. '1797a841fbb37ca7-AdyenDemo'."
        )
    return None


def check_simulator_account(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "simulator_account is required for the simulator endpoint."
    if len(value) > SIMULATOR_ACCOUNT_MAX_LENGTH or not _SIMULATOR_ACCOUNT.match(value):
        return (
            f"simulator_account must be 1 to {SIMULATOR_ACCOUNT_MAX_LENGTH} of "
            "[A-Za-z0-9_.-], not starting with a dot or hyphen."
        )
    return None


def resolve(
    *,
    connector_type: str,
    livemode: bool,
    endpoint: str,
    live_url_prefix: str = "",
    simulator_account: str = "",
) -> str:
    """The base URL for a connector's requests, built from the platform's configuration, or
    EndpointRefused (naming the field at fault). Called when a connector is created or
    changed, and again before every outbound call."""
    names = allowed(connector_type, livemode)
    template = names.get(endpoint) if isinstance(endpoint, str) else None
    if template is None:
        choices = ", ".join(repr(n) for n in names) or "none"
        raise EndpointRefused(
            f"endpoint must be one of the platform's endpoints for a {connector_type} "
            f"{_mode(livemode)} mode connector: {choices}.",
            param="endpoint",
        )
    url = template
    if LIVE_URL_PREFIX_PLACEHOLDER in template:
        problem = check_live_url_prefix(live_url_prefix)
        if problem:
            raise EndpointRefused(problem, param="live_url_prefix")
        url = url.replace(LIVE_URL_PREFIX_PLACEHOLDER, live_url_prefix)
    elif live_url_prefix:
        raise EndpointRefused(
            "live_url_prefix applies only to Adyen live connectors.", param="live_url_prefix"
        )
    if SIMULATOR_ACCOUNT_PLACEHOLDER in template:
        problem = check_simulator_account(simulator_account)
        if problem:
            raise EndpointRefused(problem, param="simulator_account")
        url = url.replace(SIMULATOR_ACCOUNT_PLACEHOLDER, simulator_account)
    elif simulator_account:
        raise EndpointRefused(
            "simulator_account applies only to the simulator endpoint.", param="simulator_account"
        )
    problem = _off_host(url, template, livemode=livemode)
    if problem:
        raise EndpointRefused(
            f"The {endpoint!r} endpoint resolves to a URL the platform does not allow ({problem})."
        )
    return url.rstrip("/")


_PLACEHOLDER_PATTERNS = {
    LIVE_URL_PREFIX_PLACEHOLDER: "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",  # in a (lower-cased) host
    SIMULATOR_ACCOUNT_PLACEHOLDER: "[A-Za-z0-9_][A-Za-z0-9_.-]*",  # one path segment
}


def _pattern(template_part: str) -> re.Pattern:
    """The template's text exactly, each placeholder standing for its validated shape."""
    regex = re.escape(template_part)
    for placeholder, shape in _PLACEHOLDER_PATTERNS.items():
        regex = regex.replace(re.escape(placeholder), shape)
    return re.compile(f"^{regex}$")


def _off_host(url: str, template: str, *, livemode: bool) -> str | None:
    """The last word, whatever built `url`: the template's scheme, host and port exactly (the
    prefix only as one DNS label), https in live mode, and nothing that changes where the
    request goes (credentials, control characters, backslashes)."""
    if not url.isprintable() or any(c.isspace() or c == "\\" for c in url):
        return "control characters, spaces or backslashes"
    try:
        got = urlsplit(url)
        want = urlsplit(template)
        ports = (got.port, want.port)
    except ValueError:
        return "not a valid URL"
    if got.scheme != want.scheme or got.scheme not in ("https", "http"):
        return f"scheme {got.scheme!r}"
    if livemode and got.scheme != "https":
        return "live mode requires https"
    if got.username is not None or got.password is not None or "@" in got.netloc:
        return "credentials in the URL"
    if got.query or got.fragment or "?" in url or "#" in url:
        return "a query or fragment"
    if ports[0] != ports[1]:
        return "another port"
    if not got.hostname or not _pattern(want.hostname or "").match(got.hostname):
        return f"host {got.hostname!r}"
    if not _pattern(want.path.rstrip("/")).match(got.path.rstrip("/")):
        return f"path {got.path!r}"
    return None


# --------------------------------------------------------------------------- the payout provider

PAYOUT_PROVIDER_ID = "payout-provider"
PAYOUT_CONNECT_TIMEOUT_S = 3.05
PAYOUT_READ_TIMEOUT_S = 10.0


def payout_provider_url() -> str:
    """The payout provider's base URL, from settings only: no merchant, seller or payout field
    ever reaches it (the destination is form data, the reference a quoted path segment).
    `PAYOUT_PROVIDER_URL`, else the simulator's Stripe dialect at `SIMULATOR_URL` under the
    account `PAYOUT_PROVIDER_ACCOUNT`. Checked so that a configuration typo fails loudly instead
    of sending bank details somewhere odd."""
    simulator = (getattr(settings, "SIMULATOR_URL", "") or "").rstrip("/")
    account = getattr(settings, "PAYOUT_PROVIDER_ACCOUNT", "payouts")
    url = getattr(settings, "PAYOUT_PROVIDER_URL", "") or (
        f"{simulator}/stripe/{quote(account, safe='')}" if simulator else ""
    )
    if not url:
        raise ImproperlyConfigured(
            "No payout provider: set PAYOUT_PROVIDER_URL (or SIMULATOR_URL)."
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or not url.isprintable()
        or any(c.isspace() or c == "\\" for c in url)
    ):
        raise ImproperlyConfigured(
            "PAYOUT_PROVIDER_URL must be an http(s) URL with a host and no credentials, "
            "query or fragment."
        )
    return url.rstrip("/")


def payout_provider_config() -> ConnectorConfig:
    """The platform's payout provider as an adapter sees a connector (Stripe dialect)."""
    return ConnectorConfig(
        connector_id=PAYOUT_PROVIDER_ID,
        connector_type="stripe",
        base_url=payout_provider_url(),
        credentials={
            "api_key": getattr(settings, "PAYOUT_PROVIDER_API_KEY", "sk_test_payouts_simulator")
        },
        connect_timeout=getattr(
            settings, "PAYOUT_PROVIDER_CONNECT_TIMEOUT_S", PAYOUT_CONNECT_TIMEOUT_S
        ),
        read_timeout=getattr(settings, "PAYOUT_PROVIDER_READ_TIMEOUT_S", PAYOUT_READ_TIMEOUT_S),
    )
