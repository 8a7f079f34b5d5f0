"""Shared HTTP plumbing for the PSP adapters.

One `requests.Session` per connector (connection reuse, thread-safe cache), explicit (connect, read)
timeouts from the `ConnectorConfig`, latency measurement, and the one place where a failed call is
classified. The classification is what keeps money safe:

- nothing was sent (connection refused, DNS failure, connect timeout, TLS handshake failure):
  `ERROR` with `retryable_elsewhere=True`; the caller may fail over;
- the request may have reached the PSP (read timeout, connection lost after sending):
  `UNKNOWN`; the caller resolves it by inquiry with the same idempotency key, never by re-charging;
- HTTP 5xx: `UNKNOWN` as well, because processing may have begun, unless the adapter knows the PSP
  said explicitly that it did not process the request.

Logs carry only the connector id, the operation, our reference (attempt / refund id), the status
code and the latency: never bodies (card data), headers (API keys) or URLs with query strings.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import iso4217
import requests
from requests.adapters import HTTPAdapter
from requests.compat import json as requests_json
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, default_headers, requote_uri
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.exceptions import SSLError as TLSHandshakeError

from apps.core.idempotency import effect_began
from apps.psp_adapters.contract import ConnectorConfig, Outcome, PSPResult, RequestError

logger = logging.getLogger(__name__)

# Concurrent connections kept per connector; more requests wait for a free one.
POOL_MAXSIZE = 32


class Operation(enum.StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    CANCEL = "cancel"
    REFUND = "refund"
    RETRIEVE = "retrieve"
    PAYOUT = "payout"
    DISPUTE = "dispute"  # evidence, submission, acceptance of a dispute


# --- sessions -------------------------------------------------------------------------------------

_sessions: dict[tuple[str, str], requests.Session] = {}
_sessions_lock = threading.Lock()


def session_for(config: ConnectorConfig) -> requests.Session:
    """The connector's session, created once per (connector id, base URL) and shared by threads."""
    key = (config.connector_id, config.base_url.rstrip("/"))
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = _new_session()
        return session


def close_sessions() -> None:
    """Closes every cached session (process shutdown, tests)."""
    with _sessions_lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()


def _new_session() -> requests.Session:
    session = requests.Session()
    # Credentials come only from the ConnectorConfig: no ambient proxies or ~/.netrc, which could
    # otherwise replace our Authorization header.
    session.trust_env = False
    # max_retries=0: a transport retry of a POST could charge twice; retries are the caller's
    # decision, always with the same idempotency key.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- requests and responses -----------------------------------------------------------------------


@dataclass(frozen=True)
class PSPResponse:
    """An HTTP answer from the PSP, whatever its status."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    payload: Any  # the decoded JSON body; None when the body is empty or not JSON
    latency_ms: int


class PSPTransportError(Exception):
    """The call failed below HTTP; `result` is its normalized outcome (ERROR or UNKNOWN)."""

    def __init__(self, result: PSPResult):
        super().__init__(result.raw_code)
        self.result = result


class PSPClient:
    """Sends requests to one connector's base URL with its session and timeouts."""

    def __init__(self, config: ConnectorConfig, *, headers: Mapping[str, str]):
        self._config = config
        self._base_url = config.base_url.rstrip("/")
        self._headers = dict(headers)
        self._timeout = (config.connect_timeout, config.read_timeout)

    def __repr__(self) -> str:  # the headers hold the API key
        return f"PSPClient(connector={self._config.connector_id!r}, base_url={self._base_url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: Operation,
        reference: str,
        headers: Mapping[str, str] | None = None,
        form: list[tuple[str, str]] | None = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> PSPResponse:
        """Sends one request; raises `PSPTransportError` when no HTTP answer arrived.

        `reference` is our id for the logs (attempt, refund or PSP reference), never card data.
        """
        # from here the PSP may act on the request: an idempotent API request that fails later
        # keeps its answer under its key instead of running again
        effect_began()
        started = time.monotonic()
        session = session_for(self._config)
        headers = {**self._headers, **(headers or {})}
        try:
            if params is None:
                response = _send(
                    session, method, self._base_url + path, headers, form, json, self._timeout
                )
            else:
                response = session.request(
                    method,
                    self._base_url + path,
                    headers=headers,
                    data=form,
                    json=json,
                    params=params,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
        except requests.RequestException as exc:
            latency_ms = _elapsed_ms(started)
            result = transport_failure_result(exc, operation, latency_ms)
            logger.warning(
                "psp call failed: connector=%s op=%s ref=%s failure=%s latency_ms=%d",
                self._config.connector_id,
                operation.value,
                reference,
                result.raw_code,
                latency_ms,
            )
            raise PSPTransportError(result) from exc
        latency_ms = _elapsed_ms(started)
        logger.info(
            "psp call: connector=%s op=%s ref=%s status=%d latency_ms=%d",
            self._config.connector_id,
            operation.value,
            reference,
            response.status_code,
            latency_ms,
        )
        return PSPResponse(
            status_code=response.status_code,
            headers=response.headers,
            payload=_json_or_none(response),
            latency_ms=latency_ms,
        )

    def stream(self, path_or_url: str, *, operation: Operation, reference: str):
        """GET a file as a stream (settlement reports, issue 14): the caller iterates and
        closes the response. A full URL is accepted only on the connector's own host."""
        url = path_or_url if "://" in path_or_url else self._base_url + path_or_url
        if not _same_host(url, self._base_url):
            raise PSPTransportError(PSPResult(outcome=Outcome.ERROR, raw_code="report_url_refused"))
        try:
            response = session_for(self._config).get(
                url,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as exc:
            raise PSPTransportError(transport_failure_result(exc, operation, 0)) from exc
        logger.info(
            "psp report: connector=%s op=%s ref=%s status=%d",
            self._config.connector_id,
            operation.value,
            reference,
            response.status_code,
        )
        return response


_SESSION_HEADERS = default_headers()  # what a requests.Session sends unless told otherwise


def _send(
    session: requests.Session,
    method: str,
    url: str,
    headers: Mapping[str, str],
    form: list[tuple[str, str]] | None,
    json: Any,
    timeout: tuple[float, float],
) -> requests.Response:
    """`session.request(...)` without its per-call preparation (settings, cookies, hooks and
    URL parsing merged anew for every call: about a tenth of a payment's CPU). The request is
    the same on the wire (headers, body, Content-Length) and is sent by `Session.send`, so a
    failure raises the same `requests` exceptions, which `transport_failure_result`
    classifies. No cookie is sent: a PSP's API is authenticated by its key, never a cookie."""
    merged = CaseInsensitiveDict(_SESSION_HEADERS)
    for header in headers.items():
        check_header_validity(header)  # as requests: a CR/LF in a value raises InvalidHeader
        merged[header[0]] = header[1]
    body: bytes | None = None
    if not form and json is not None:
        try:
            body = requests_json.dumps(json, allow_nan=False).encode("utf-8")
        except ValueError as exc:  # NaN or infinity: refused as requests refuses them
            raise requests.exceptions.InvalidJSONError(exc) from exc
        if "Content-Type" not in merged:
            merged["Content-Type"] = "application/json"
    elif form:
        body = urlencode([(k, v) for k, v in form if v is not None], doseq=True).encode()
        if "Content-Type" not in merged:
            merged["Content-Type"] = "application/x-www-form-urlencoded"
    if body is not None:
        merged["Content-Length"] = str(len(body))
    elif method.upper() not in ("GET", "HEAD"):
        merged["Content-Length"] = "0"  # as requests: without it urllib3 would send chunked
    prepared = requests.PreparedRequest()
    prepared.method = method.upper()
    prepared.url = requote_uri(url)
    prepared.headers = merged
    prepared.body = body
    prepared.hooks = {"response": []}
    prepared._cookies = RequestsCookieJar()  # Session.send reads it for a redirect (not followed)
    # Session.send (not the adapter's): the transport adapter, hooks and tracing stay requests'
    # own; it reads the body before returning, so a failure while reading raises here too
    return session.send(
        prepared,
        stream=False,
        timeout=timeout,
        verify=session.verify,
        cert=session.cert,
        proxies=session.proxies,
        allow_redirects=False,
    )


def _same_host(url: str, base_url: str) -> bool:
    from urllib.parse import urlsplit

    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None  # an HTML error page from a proxy, say


# --- classification -------------------------------------------------------------------------------


def transport_failure_result(
    exc: requests.RequestException, operation: Operation, latency_ms: int = 0
) -> PSPResult:
    """Normalizes a call that got no HTTP answer."""
    if _failed_before_sending(exc):
        kind = "connect_timeout" if isinstance(exc, requests.ConnectTimeout) else "connect_failed"
        if operation is Operation.RETRIEVE:
            # an inquiry that could not be asked leaves the payment exactly as unknown as before
            return PSPResult(outcome=Outcome.UNKNOWN, raw_code=kind, latency_ms=latency_ms)
        return PSPResult(
            outcome=Outcome.ERROR,
            raw_code=kind,
            raw_message="the PSP was not reached; nothing was sent",
            latency_ms=latency_ms,
            retryable_elsewhere=True,
        )
    kind = "read_timeout" if isinstance(exc, requests.ReadTimeout) else "connection_lost"
    return PSPResult(
        outcome=Outcome.UNKNOWN,
        raw_code=kind,
        raw_message="the request may have reached the PSP; resolve by inquiry",
        latency_ms=latency_ms,
    )


def _failed_before_sending(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)):
        return True  # a broken base URL in the connector config
    # With max_retries=0, urllib3 wraps connect-phase failures in MaxRetryError and re-raises
    # failures after sending (connection reset, remote disconnect) unwrapped as ProtocolError.
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # NewConnectionError covers refused connections and DNS failures (NameResolutionError).
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError, TLSHandshakeError))


def server_error_result(
    response: PSPResponse,
    *,
    raw_code: str = "",
    raw_message: str = "",
    psp_reference: str = "",
    not_processed: bool = False,
) -> PSPResult:
    """HTTP 5xx. Processing may have begun, so the outcome is UNKNOWN; only when the PSP says
    explicitly that it did not process the request (`not_processed`) may the caller fail over.

    503 Service Unavailable is that statement: the PSP (or its edge) refused the request before
    handling it (RFC 9110 15.6.4), which is how PSP outages and maintenance windows present.
    Failing over on it is what keeps payments flowing during an outage; a 500/502/504 stays
    in doubt."""
    if not_processed or response.status_code == 503:
        return PSPResult(
            outcome=Outcome.ERROR,
            psp_reference=psp_reference,
            raw_code=raw_code or f"http_{response.status_code}",
            raw_message=raw_message,
            http_status=response.status_code,
            latency_ms=response.latency_ms,
            retryable_elsewhere=True,
        )
    return PSPResult(
        outcome=Outcome.UNKNOWN,
        psp_reference=psp_reference,
        raw_code=raw_code or f"http_{response.status_code}",
        raw_message=raw_message,
        http_status=response.status_code,
        latency_ms=response.latency_ms,
    )


def request_rejected_result(
    response: PSPResponse,
    operation: Operation,
    *,
    raw_code: str = "",
    raw_message: str = "",
    psp_reference: str = "",
) -> PSPResult:
    """HTTP 4xx other than a decline: the PSP refused the request before processing it
    (validation, authentication, rate limit), so nothing happened there. It says nothing about
    the shopper's card, and for an inquiry nothing about the payment asked about: a 404 from a
    lookup endpoint is not "no such payment"."""
    status = response.status_code
    if status in (401, 403):
        kind = RequestError.AUTHENTICATION
    elif status == 429:
        kind = RequestError.RATE_LIMITED
    else:
        kind = RequestError.INVALID_REQUEST
    return PSPResult(
        outcome=Outcome.ERROR,
        psp_reference=psp_reference,
        raw_code=raw_code or f"http_{status}",
        raw_message=raw_message,
        http_status=status,
        latency_ms=response.latency_ms,
        # an inquiry that was refused says nothing about where the payment may go next
        retryable_elsewhere=operation is not Operation.RETRIEVE,
        request_error=kind,
    )


def in_doubt_result(
    response: PSPResponse, *, raw_code: str, raw_message: str = "", psp_reference: str = ""
) -> PSPResult:
    """A 4xx that means "a request with this idempotency key already exists or is in flight":
    the first one may have charged, so the outcome is UNKNOWN, never a failover."""
    return PSPResult(
        outcome=Outcome.UNKNOWN,
        psp_reference=psp_reference,
        raw_code=raw_code,
        raw_message=raw_message,
        http_status=response.status_code,
        latency_ms=response.latency_ms,
    )


# --- shared by the adapters' settlement report parsers --------------------------------------------


def minor_units(amount: str | Decimal, currency: str) -> int:
    """A major-unit decimal string from a report ("12.345", "-1000.00") as exact minor units,
    with the currency's ISO 4217 exponent (JPY 0, EUR 2, KWD 3). Refuses sub-minor precision
    rather than rounding money silently, and thousands separators rather than guessing whether
    "1,000" means one thousand or one."""
    exponent = iso4217.Currency(currency.strip().upper()).exponent
    if exponent is None:
        raise ValueError(f"{currency.upper()} has no minor unit")
    text = str(amount).strip()
    if not text:
        return 0
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {amount!r}")
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount!r} has more decimals than {currency.upper()} allows")
    return int(scaled)
