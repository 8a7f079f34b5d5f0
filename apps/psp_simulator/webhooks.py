"""Asynchronous PSP notifications back to the platform, with delay, duplication and reordering.

Handlers emit events while they hold the store lock; this module only queues them. A scheduler
thread releases them when due, and one sender thread POSTs them in order, so with every switch off
the platform receives events in the order they happened. Bodies are rendered and signed at send
time (as PSPs do: a retry carries a fresh Stripe timestamp; a rotated secret applies at once).
Failed deliveries (non-2xx or network error) are retried with exponential backoff.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from apps.psp_simulator.scheduler import Scheduler
from apps.psp_simulator.signing import (
    adyen_hmac_signature,
    is_hex_key,
    stripe_signature_header,
)

logger = logging.getLogger("psp_simulator.webhooks")

DIALECTS = ("stripe", "adyen")
STRIPE_API_VERSION = "2024-06-20"


class InvalidWebhookConfig(ValueError):
    pass


@dataclass
class WebhookConfig:
    url: str
    secret: str = ""  # Stripe: the whsec_… string; Adyen: the HMAC key in hex
    dialect: str | None = None  # None: the dialect the connector's events come from
    enabled: bool = True
    delay_ms: float = 0.0
    delay_jitter_ms: float = 0.0
    duplicate_rate: float = 0.0  # probability that an event is delivered twice
    reorder_window: int = 0  # >= 2: hold this many events and deliver them shuffled
    reorder_max_hold_ms: float = 2000.0  # release a part-filled window after this long
    max_attempts: int = 5
    retry_backoff_ms: float = 500.0  # doubled after each failed attempt
    timeout_ms: float = 5000.0
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: WebhookConfig | None = None) -> WebhookConfig:
        if not isinstance(data, dict):
            raise InvalidWebhookConfig("webhook config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidWebhookConfig(f"unknown webhook fields: {', '.join(unknown)}")
        merged = asdict(base) if base is not None else {}
        merged.update(data)
        if not merged.get("url"):
            raise InvalidWebhookConfig("url is required")
        config = cls(**merged)
        config.validate()
        return config

    def validate(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise InvalidWebhookConfig("url must be an http(s) URL")
        if self.dialect is not None and self.dialect not in DIALECTS:
            raise InvalidWebhookConfig(f"dialect must be one of {DIALECTS}")
        if self.dialect == "adyen" and self.secret and not is_hex_key(self.secret):
            raise InvalidWebhookConfig("an Adyen HMAC key must be hexadecimal")
        if not 0.0 <= float(self.duplicate_rate) <= 1.0:
            raise InvalidWebhookConfig("duplicate_rate must be between 0 and 1")
        for name in ("delay_ms", "delay_jitter_ms", "reorder_max_hold_ms", "retry_backoff_ms"):
            if float(getattr(self, name)) < 0:
                raise InvalidWebhookConfig(f"{name} must be >= 0")
        if float(self.timeout_ms) <= 0:
            raise InvalidWebhookConfig("timeout_ms must be > 0")
        if not isinstance(self.reorder_window, int) or self.reorder_window < 0:
            raise InvalidWebhookConfig("reorder_window must be a whole number >= 0")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidWebhookConfig("max_attempts must be a whole number >= 1")

    def to_dict(self, *, reveal_secret: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not reveal_secret and self.secret:
            data["secret"] = f"{self.secret[:6]}…"  # enough to tell keys apart, not to use one
        return data


@dataclass
class OutboundEvent:
    """One PSP event, unsigned; rendered to the wire at send time."""

    dialect: str
    event_id: str  # Stripe evt_… / Adyen "<eventCode>:<pspReference>:<success>"
    event_type: str  # Stripe type / Adyen eventCode
    payload: dict[str, Any]  # Stripe event object / Adyen NotificationRequestItem
    created: float = field(default_factory=time.time)


@dataclass
class Delivery:
    delivery_id: str
    connector: str
    event: OutboundEvent
    duplicate: bool = False
    attempts: int = 0
    status: str = "scheduled"  # scheduled | held | delivered | failed | dropped
    last_status_code: int | None = None
    last_error: str = ""
    enqueued_at: float = field(default_factory=time.time)
    delivered_at: float | None = None
    sequence: int = 0  # order in which deliveries were first sent (set on first attempt)
    # the connector's webhook state, read at send time so config changes apply to queued events
    hooks: ConnectorWebhooks | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "connector": self.connector,
            "dialect": self.event.dialect,
            "event_id": self.event.event_id,
            "event_type": self.event.event_type,
            "duplicate": self.duplicate,
            "attempts": self.attempts,
            "status": self.status,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "enqueued_at": self.enqueued_at,
            "delivered_at": self.delivered_at,
            "sequence": self.sequence,
            "payload": self.event.payload,
        }


class ConnectorWebhooks:
    """A connector's webhook target, switches, RNG, reorder buffer and delivery log."""

    def __init__(self, connector: str) -> None:
        self.connector = connector
        self.config: WebhookConfig | None = None
        self.rng = random.Random()
        self.held: list[Delivery] = []
        self.hold_generation = 0
        self.log: deque[Delivery] = deque(maxlen=5000)
        self.retired = False  # set when the simulator is reset: drop what is still queued

    def configure(self, config: WebhookConfig | None) -> None:
        self.config = config
        self.rng = random.Random(config.seed if config else None)


class WebhookDispatcher:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sent = itertools.count(1)
        self._outbox: queue.Queue[Delivery] = queue.Queue()
        self._sender: threading.Thread | None = None

    # -- called by handlers (store lock held) -------------------------------------------------

    def enqueue(self, hooks: ConnectorWebhooks, event: OutboundEvent) -> None:
        config = hooks.config
        if config is None or not config.enabled:
            return  # unregistered: real PSPs send nothing either
        if config.dialect and config.dialect != event.dialect:
            logger.warning(
                "connector %s: %s event not sent to a %s webhook target",
                hooks.connector,
                event.dialect,
                config.dialect,
            )
            return
        with self._lock:
            copies = [self._new_delivery(hooks, event, duplicate=False)]
            if config.duplicate_rate and hooks.rng.random() < config.duplicate_rate:
                copies.append(self._new_delivery(hooks, event, duplicate=True))
            for delivery in copies:
                hooks.log.append(delivery)
            if config.reorder_window >= 2:
                self._hold(hooks, config, copies)
            else:
                for delivery in copies:
                    self._schedule_first_attempt(hooks, config, delivery)

    def flush(self, hooks: ConnectorWebhooks) -> int:
        """Release a held reorder window now; returns how many deliveries were released."""
        with self._lock:
            return self._release(hooks)

    # -- internals ----------------------------------------------------------------------------

    def _new_delivery(self, hooks: ConnectorWebhooks, event: OutboundEvent, duplicate: bool):
        return Delivery(
            delivery_id=f"whd_{next(self._ids):08d}",
            connector=hooks.connector,
            event=event,
            duplicate=duplicate,
            hooks=hooks,
        )

    def _hold(self, hooks: ConnectorWebhooks, config: WebhookConfig, copies: list[Delivery]):
        was_empty = not hooks.held
        for delivery in copies:
            delivery.status = "held"
            hooks.held.append(delivery)
        if len(hooks.held) >= config.reorder_window:
            self._release(hooks)
        elif was_empty:
            generation = hooks.hold_generation

            def release_if_still_held() -> None:
                with self._lock:
                    if hooks.hold_generation == generation:
                        self._release(hooks)

            self._scheduler.call_later(config.reorder_max_hold_ms / 1000.0, release_if_still_held)

    def _release(self, hooks: ConnectorWebhooks) -> int:
        batch, hooks.held = hooks.held, []
        hooks.hold_generation += 1
        config = hooks.config
        if not batch:
            return 0
        if config is None:
            for delivery in batch:
                delivery.status = "dropped"
            return 0
        # shuffle until the order differs (a window of >= 2 always gets reordered)
        original = list(batch)
        for _ in range(10):
            hooks.rng.shuffle(batch)
            if batch != original:
                break
        for delivery in batch:
            delivery.status = "scheduled"
            self._schedule_first_attempt(hooks, config, delivery)
        return len(batch)

    def _schedule_first_attempt(
        self, hooks: ConnectorWebhooks, config: WebhookConfig, delivery: Delivery
    ) -> None:
        delay_ms = float(config.delay_ms)
        if config.delay_jitter_ms:
            delay_ms += hooks.rng.uniform(-config.delay_jitter_ms, config.delay_jitter_ms)
        self._scheduler.call_later(max(0.0, delay_ms) / 1000.0, lambda: self._submit(delivery))

    def _submit(self, delivery: Delivery) -> None:
        self._outbox.put(delivery)
        if self._sender is None or not self._sender.is_alive():
            with self._lock:
                if self._sender is None or not self._sender.is_alive():
                    self._sender = threading.Thread(
                        target=self._send_loop, name="psp-sim-webhook-sender", daemon=True
                    )
                    self._sender.start()

    def _send_loop(self) -> None:
        while True:
            delivery = self._outbox.get()
            try:
                self._attempt(delivery)
            except Exception:
                logger.exception("webhook delivery %s crashed", delivery.delivery_id)

    def _attempt(self, delivery: Delivery) -> None:
        hooks = delivery.hooks
        config = hooks.config if hooks is not None else None
        if hooks is None or hooks.retired or config is None or not config.enabled:
            delivery.status = "dropped"
            return
        delivery.attempts += 1
        if delivery.sequence == 0:
            delivery.sequence = next(self._sent)
        body, headers = render(delivery.event, config.secret)
        # config.url was validated as http(s) when the target was registered
        request = urllib.request.Request(config.url, data=body, headers=headers, method="POST")  # noqa: S310
        timeout_s = config.timeout_ms / 1000.0
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                delivery.last_status_code = response.status
                response.read()
            ok = 200 <= delivery.last_status_code < 300
            delivery.last_error = "" if ok else f"HTTP {delivery.last_status_code}"
        except urllib.error.HTTPError as exc:
            delivery.last_status_code = exc.code
            delivery.last_error = f"HTTP {exc.code}"
            ok = False
        except (OSError, ValueError) as exc:
            delivery.last_status_code = None
            delivery.last_error = f"{type(exc).__name__}: {exc}"
            ok = False
        if ok:
            delivery.status = "delivered"
            delivery.delivered_at = time.time()
            return
        if delivery.attempts >= config.max_attempts:
            delivery.status = "failed"
            logger.warning(
                "webhook %s (%s) to %s failed after %d attempts: %s",
                delivery.event.event_type,
                delivery.connector,
                config.url,
                delivery.attempts,
                delivery.last_error,
            )
            return
        delivery.status = "scheduled"
        backoff_s = config.retry_backoff_ms / 1000.0 * (2 ** (delivery.attempts - 1))
        self._scheduler.call_later(backoff_s, lambda: self._submit(delivery))


def render(event: OutboundEvent, secret: str) -> tuple[bytes, dict[str, str]]:
    if event.dialect == "stripe":
        body = json.dumps(event.payload, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        if secret:
            headers["Stripe-Signature"] = stripe_signature_header(body, secret, int(time.time()))
        return body, headers
    item = copy.deepcopy(event.payload)
    if secret and is_hex_key(secret):
        item.setdefault("additionalData", {})["hmacSignature"] = adyen_hmac_signature(item, secret)
    body = json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}, indent=2
    ).encode()
    return body, {"Content-Type": "application/json", "User-Agent": "Adyen HttpClient 1.0"}
