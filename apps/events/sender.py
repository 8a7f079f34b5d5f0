"""HTTP for merchant webhooks: pure I/O, no database (it runs in pool threads).

One process-wide urllib3 pool (keep-alive per host) and one thread pool, so a batch of
deliveries goes out concurrently. Every delivery is checked again by url_safety first and then
connects to the address that check resolved (DNS rebinding cannot swap it). A delivery succeeds
on a 2xx within the timeout; redirects are not followed (a 3xx is a failure, as it would let a
URL escape the checks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import urllib3
from django.utils import timezone

from apps.events import url_safety

BODY_READ_LIMIT = 64 * 1024
USER_AGENT = "PaymentsPlatform-Webhooks/1.0"


@dataclass(frozen=True)
class OutgoingWebhook:
    delivery_id: int
    url: str
    headers: dict[str, str]
    body: bytes
    livemode: bool


@dataclass(frozen=True)
class DeliveryResult:
    delivery_id: int
    started_at: datetime
    latency_ms: int
    status_code: int | None
    response_body: str
    error: str

    @property
    def succeeded(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(
        self, *, concurrency: int, connect_timeout: float, timeout: float, body_chars: int
    ) -> None:
        self.timeout = timeout
        self.body_chars = body_chars
        self._pool = urllib3.PoolManager(
            num_pools=256,
            maxsize=concurrency,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
        )
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="webhook-sender"
        )

    def send_all(self, webhooks: Iterable[OutgoingWebhook]) -> list[DeliveryResult]:
        return list(self._executor.map(self.send, webhooks))

    def send(self, webhook: OutgoingWebhook) -> DeliveryResult:
        started_at = timezone.now()
        start = time.perf_counter()
        status_code, body, error = None, "", ""
        try:
            problem, addresses = url_safety.vet(webhook.url, livemode=webhook.livemode)
            if problem is not None:
                error = f"refused: {problem.message}"
            else:
                status_code, body = self._post(webhook, addresses[0] if addresses else None)
        except urllib3.exceptions.NewConnectionError as exc:  # (a TimeoutError subclass)
            error = f"connection failed: {_reason(exc)}"[:300]
        except urllib3.exceptions.TimeoutError:
            error = "timeout"
        except urllib3.exceptions.HTTPError as exc:
            error = f"{type(exc).__name__}: {_reason(exc)}"[:300]
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency_ms = int((time.perf_counter() - start) * 1000)
        if not error and latency_ms > self.timeout * 1000:
            error = "timeout"  # a response that trickled in past the limit does not count
        if not error and status_code is not None and 300 <= status_code < 400:
            error = "redirects are not followed"
        return DeliveryResult(
            delivery_id=webhook.delivery_id,
            started_at=started_at,
            latency_ms=latency_ms,
            status_code=status_code,
            response_body=body,
            error=error,
        )

    def _post(self, webhook: OutgoingWebhook, address: str | None) -> tuple[int, str]:
        """POSTs to `address`, the one url_safety just checked (no second DNS lookup that could
        answer differently: DNS rebinding), with the URL's own host in the Host header, the TLS
        SNI and the certificate check; by name only where private targets are allowed."""
        if address is None:
            response = self._pool.request(
                "POST",
                webhook.url,
                body=webhook.body,
                headers=webhook.headers,
                redirect=False,
                preload_content=False,
            )
        else:
            parts = urlsplit(webhook.url)
            https = parts.scheme == "https"
            pool = self._pool.connection_from_host(
                address,
                port=parts.port or (443 if https else 80),
                scheme=parts.scheme,
                pool_kwargs={"server_hostname": parts.hostname, "assert_hostname": parts.hostname}
                if https
                else None,
            )
            response = pool.urlopen(
                "POST",
                urlunsplit(("", "", parts.path or "/", parts.query, "")),
                body=webhook.body,
                headers={**webhook.headers, "Host": parts.netloc},
                redirect=False,
                retries=False,
                preload_content=False,
            )
        try:
            data = response.read(BODY_READ_LIMIT + 1)
        except BaseException:
            response.close()
            raise
        if len(data) > BODY_READ_LIMIT:
            response.close()  # do not read an endless body: this connection is dropped
        else:
            response.release_conn()  # read to the end: the connection is kept alive
        text = data[: self.body_chars * 4].decode("utf-8", "replace")
        return response.status, text[: self.body_chars]


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).split(": ", 1)[-1][:200]


_sender: WebhookSender | None = None
_sender_lock = threading.Lock()


def get_sender() -> WebhookSender:
    """One per process (created lazily, so a forked worker builds its own)."""
    global _sender
    if _sender is None:
        with _sender_lock:
            if _sender is None:
                from django.conf import settings

                _sender = WebhookSender(
                    concurrency=getattr(settings, "WEBHOOK_DELIVERY_CONCURRENCY", 16),
                    connect_timeout=getattr(settings, "WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3.0),
                    timeout=getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 10.0),
                    body_chars=getattr(settings, "WEBHOOK_RESPONSE_BODY_CHARS", 500),
                )
    return _sender
