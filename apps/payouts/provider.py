"""The payout-provider adapter: sends payouts to the bank rails and reads their state.

One provider today, the PSP simulator's Stripe-dialect payout endpoint (`POST /v1/payouts`,
`GET /v1/payouts/{id}`, docs/psp-simulator.md). Pure I/O and mapping: no ORM, no settings
inside the class (`payout_provider()` builds it from settings). The classification is what keeps
money safe:

- the provider answered with a payout: `PAID`, `PENDING` (in transit) or `FAILED`;
- it refused the request (4xx): `REJECTED`, nothing was paid;
- nothing was processed (connection refused, connect timeout, 503, 429): `RETRYABLE`;
- it may have been processed (read timeout, 5xx, 409 in flight): `UNKNOWN`; the payout is
  re-sent later with the same idempotency key, which can never pay twice.

Logs carry the payout id, the status code and the latency only: never the destination (a bank
account number), the API key or a body."""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from apps.core.idempotency import effect_began

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 3.05
DEFAULT_READ_TIMEOUT_S = 10.0


class ProviderOutcome(enum.StrEnum):
    PAID = "paid"
    PENDING = "pending"
    FAILED = "failed"
    REJECTED = "rejected"
    RETRYABLE = "retryable"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PayoutRequest:
    payout_id: str
    idempotency_key: str
    amount: int
    currency: str
    destination: str = field(repr=False)  # a bank account number: never in a repr or a log
    description: str = ""


@dataclass(frozen=True)
class PayoutResult:
    outcome: ProviderOutcome
    reference: str = ""
    failure_code: str = ""
    failure_message: str = ""
    arrival_date: int | None = None  # unix seconds
    http_status: int | None = None

    @property
    def definite(self) -> bool:
        return self.outcome not in (ProviderOutcome.RETRYABLE, ProviderOutcome.UNKNOWN)


_STATUS_OUTCOMES = {
    "paid": ProviderOutcome.PAID,
    "pending": ProviderOutcome.PENDING,
    "in_transit": ProviderOutcome.PENDING,
    "failed": ProviderOutcome.FAILED,
    "canceled": ProviderOutcome.FAILED,
}


class SimulatorPayoutProvider:
    """Stripe-dialect payouts on the simulator (`<base_url>/v1/payouts`)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or _session_for(self.base_url)

    def create_payout(self, request: PayoutRequest) -> PayoutResult:
        form = {
            "amount": str(request.amount),
            "currency": request.currency,
            "destination": request.destination,
            "metadata[payout_id]": request.payout_id,
        }
        if request.description:
            form["description"] = request.description
        return self._call(
            "POST",
            "/v1/payouts",
            payout_id=request.payout_id,
            data=form,
            headers={"Idempotency-Key": request.idempotency_key},
        )

    def retrieve_payout(self, *, reference: str, payout_id: str = "") -> PayoutResult:
        # the reference is the provider's answer: one path segment, whatever it contains
        return self._call(
            "GET", f"/v1/payouts/{quote(reference, safe='')}", payout_id=payout_id or reference
        )

    def _call(self, method: str, path: str, *, payout_id: str, **kwargs: Any) -> PayoutResult:
        headers = {"Authorization": f"Bearer {self._api_key}", **kwargs.pop("headers", {})}
        effect_began()  # the provider may act on it from here: an API retry must not re-run it
        started = time.monotonic()
        try:
            # never follow a redirect: it would re-send the body (a bank account number) and
            # the request to a host the platform did not configure
            response = self.session.request(
                method,
                self.base_url + path,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                **kwargs,
            )
        except requests.exceptions.ConnectTimeout:
            return self._log(payout_id, started, PayoutResult(ProviderOutcome.RETRYABLE))
        except requests.exceptions.ConnectionError as exc:
            # refused before anything was sent: safe to retry; dropped after sending: unknown
            not_sent = _was_not_sent(exc)
            outcome = ProviderOutcome.RETRYABLE if not_sent else ProviderOutcome.UNKNOWN
            return self._log(payout_id, started, PayoutResult(outcome))
        except requests.exceptions.RequestException:  # read timeout and the like
            return self._log(payout_id, started, PayoutResult(ProviderOutcome.UNKNOWN))
        return self._log(payout_id, started, _map_response(response))

    @staticmethod
    def _log(payout_id: str, started: float, result: PayoutResult) -> PayoutResult:
        logger.info(
            "payout provider: %s -> %s (HTTP %s, %d ms)",
            payout_id,
            result.outcome,
            result.http_status,
            (time.monotonic() - started) * 1000,
        )
        return result


_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def _session_for(base_url: str) -> requests.Session:
    """One session per provider URL, shared by threads (connection reuse)."""
    with _sessions_lock:
        session = _sessions.get(base_url)
        if session is None:
            session = _sessions[base_url] = requests.Session()
            session.trust_env = False  # no ambient proxies or ~/.netrc replacing our auth
        return session


def _was_not_sent(exc: Exception) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectTimeoutError | NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = getattr(current, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        current = nested or current.__cause__ or current.__context__
    return False


def _map_response(response: requests.Response) -> PayoutResult:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if 200 <= status < 300:
        outcome = _STATUS_OUTCOMES.get(str(body.get("status")))
        if outcome is None or not body.get("id"):
            return PayoutResult(ProviderOutcome.UNKNOWN, http_status=status)
        return PayoutResult(
            outcome,
            reference=str(body["id"]),
            failure_code=str(body.get("failure_code") or ""),
            failure_message=str(body.get("failure_message") or "")[:255],
            arrival_date=body.get("arrival_date") if outcome == ProviderOutcome.PAID else None,
            http_status=status,
        )
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    if 300 <= status < 400 or status in (401, 403, 429, 503):
        # a redirect (not followed) is the provider's configuration, not the payout's fault
        # not processed: a configuration error or back-pressure, never the payout's fault
        return PayoutResult(ProviderOutcome.RETRYABLE, http_status=status)
    if status >= 500 or status == 409 or error.get("type") == "idempotency_error":
        # 5xx: processing may have begun; 409: the same key is still running
        return PayoutResult(ProviderOutcome.UNKNOWN, http_status=status)
    return PayoutResult(
        ProviderOutcome.REJECTED,
        failure_code=str(error.get("code") or f"http_{status}")[:40],
        failure_message=str(error.get("message") or "")[:255],
        http_status=status,
    )


def _provider_url() -> str:
    """The provider's base URL, from settings only: no merchant, seller or payout field ever
    reaches it (the destination is form data, the reference a quoted path segment). Checked so
    that a configuration typo fails loudly instead of sending bank details somewhere odd."""
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
    return url


def payout_provider() -> SimulatorPayoutProvider:
    """The configured provider: `PAYOUT_PROVIDER_URL`, else the simulator's Stripe dialect at
    `SIMULATOR_URL` under the account `PAYOUT_PROVIDER_ACCOUNT`."""
    base_url = _provider_url()
    return SimulatorPayoutProvider(
        base_url=base_url,
        api_key=getattr(settings, "PAYOUT_PROVIDER_API_KEY", "sk_test_payouts_simulator"),
        connect_timeout=getattr(
            settings, "PAYOUT_PROVIDER_CONNECT_TIMEOUT_S", DEFAULT_CONNECT_TIMEOUT_S
        ),
        read_timeout=getattr(settings, "PAYOUT_PROVIDER_READ_TIMEOUT_S", DEFAULT_READ_TIMEOUT_S),
    )
