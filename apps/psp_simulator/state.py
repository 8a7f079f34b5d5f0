"""The simulator's memory: payments, charges, refunds, payouts and idempotency records.

Everything lives in this one process, guarded by one lock (`STORE.lock`). That is why the
simulator must run as a single process (`gunicorn -w 1 --threads 128`): a second worker would
have its own, different memory. Handlers hold the lock only while they read or change state,
never while they sleep, so slow and hanging requests do not block the others.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from apps.psp_simulator.faults import FaultInjector
from apps.psp_simulator.scheduler import Scheduler
from apps.psp_simulator.webhooks import ConnectorWebhooks, OutboundEvent, WebhookDispatcher

_ALPHANUMERIC = string.ascii_letters + string.digits
_ADYEN_REFERENCE = string.ascii_uppercase + string.digits


def stripe_id(prefix: str) -> str:
    return f"{prefix}_{''.join(secrets.choice(_ALPHANUMERIC) for _ in range(24))}"


def adyen_psp_reference() -> str:
    return "".join(secrets.choice(_ADYEN_REFERENCE) for _ in range(16))


def now() -> int:
    return int(time.time())


@dataclass
class Charge:
    """One authorisation that reached the (simulated) issuer: what `/_sim/charges` lists."""

    id: str  # Stripe ch_… / Adyen pspReference
    connector: str
    dialect: str
    payment_id: str  # Stripe pi_… / Adyen pspReference
    amount: int
    currency: str
    status: str  # authorized | captured | declined | canceled
    reference: str  # our attempt id (Stripe metadata.attempt_id, Adyen reference)
    idempotency_key: str
    last4: str
    brand: str
    exp_month: int
    exp_year: int
    decline_code: str = ""
    amount_captured: int = 0
    amount_refunded: int = 0
    # 3-D Secure as requested by the merchant ("" | any | challenge), the SCA exemption it
    # claimed (as the dialect spelt it), and whether the shopper authenticated
    three_d_secure: str = ""
    sca_exemption: str = ""
    authenticated: bool = False
    created: int = field(default_factory=now)
    captured_at: int = 0  # unix seconds of the capture (settlement batches are by day)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "dialect": self.dialect,
            "payment_id": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "reference": self.reference,
            "idempotency_key": self.idempotency_key,
            "last4": self.last4,
            "brand": self.brand,
            "decline_code": self.decline_code,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "three_d_secure": self.three_d_secure,
            "sca_exemption": self.sca_exemption,
            "authenticated": self.authenticated,
            "created": self.created,
        }


@dataclass
class Payment:
    """A Stripe PaymentIntent or an Adyen payment. Status uses Stripe's PaymentIntent words."""

    id: str
    connector: str
    dialect: str
    amount: int
    currency: str  # lower case
    capture_method: str  # automatic | manual
    status: str
    reference: str = ""
    idempotency_key: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    description: str = ""
    receipt_email: str = ""
    return_url: str = ""
    merchant_account: str = ""
    payment_method_id: str = ""
    last4: str = ""
    brand: str = ""
    exp_month: int = 0
    exp_year: int = 0
    card_outcome: str = ""  # the TestCard outcome
    card_number_key: str = ""  # table number of a known test card ("" for implicit approvals)
    charge_ids: list[str] = field(default_factory=list)
    latest_charge: str | None = None
    last_payment_error: dict[str, Any] | None = None
    next_action: dict[str, Any] | None = None
    amount_capturable: int = 0
    amount_received: int = 0
    amount_refunded: int = 0
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    three_ds_token: str = ""
    three_ds_outcome: str = ""  # "" | succeeded | failed
    three_ds_requested: str = ""  # the merchant asked for 3DS: "" | any | challenge
    sca_exemption: str = ""  # the exemption the merchant claimed, in its dialect
    redirect_result: str = ""  # Adyen: handed to the shopper's returnUrl after the challenge
    refund_ids: list[str] = field(default_factory=list)
    adyen_final: dict[str, Any] | None = None  # the /payments/details answer once decided
    created: int = field(default_factory=now)


@dataclass
class Refund:
    id: str  # Stripe re_… / Adyen modification pspReference
    connector: str
    dialect: str
    payment_id: str
    charge_id: str
    amount: int
    currency: str
    status: str  # pending | succeeded | failed
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    reference: str = ""
    failure_reason: str | None = None
    created: int = field(default_factory=now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "dialect": self.dialect,
            "payment_id": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "reference": self.reference,
            "metadata": self.metadata,
            "failure_reason": self.failure_reason,
            "created": self.created,
        }


@dataclass
class Payout:
    id: str
    connector: str
    amount: int
    currency: str
    destination: str
    status: str  # pending | in_transit | paid | failed
    metadata: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    arrival_date: int = field(default_factory=now)
    created: int = field(default_factory=now)


@dataclass
class StoredResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


@dataclass
class IdempotencyRecord:
    fingerprint: str
    path: str
    in_flight: bool = True
    response: StoredResponse | None = None
    created: float = field(default_factory=time.time)


@dataclass
class ConnectorSettings:
    """Behaviour that is not a fault: how long asynchronous outcomes take."""

    async_outcome_delay_ms: float = 1000.0  # delayed payouts, failing refunds
    slow_card_delay_ms: float = 3000.0
    dispute_delay_ms: float = 2000.0  # dispute test cards: from capture to the dispute

    def to_dict(self) -> dict[str, Any]:
        return {
            "async_outcome_delay_ms": self.async_outcome_delay_ms,
            "slow_card_delay_ms": self.slow_card_delay_ms,
            "dispute_delay_ms": self.dispute_delay_ms,
        }


class ConnectorState:
    def __init__(self, name: str) -> None:
        self.name = name
        self.payments: dict[str, Payment] = {}
        self.charges: dict[str, Charge] = {}
        self.refunds: dict[str, Refund] = {}
        self.payouts: dict[str, Payout] = {}
        self.modifications: dict[str, dict[str, Any]] = {}  # Adyen captures/cancels
        self.disputes: dict[str, Any] = {}  # id -> disputes.SimDispute
        self.idempotency: dict[str, IdempotencyRecord] = {}
        self.faults = FaultInjector()
        self.webhooks = ConnectorWebhooks(name)
        self.settings = ConnectorSettings()
        self.dialects_seen: set[str] = set()
        # settlement batches and their reports (apps/psp_simulator/settlement.py)
        from apps.psp_simulator.settlement import ConnectorSettlement

        self.settlement = ConnectorSettlement()

    def emit(self, event: OutboundEvent) -> None:
        DISPATCHER.enqueue(self.webhooks, event)

    def payment_by_token(self, token: str) -> Payment | None:
        for payment in self.payments.values():
            if payment.three_ds_token == token:
                return payment
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dialects": sorted(self.dialects_seen),
            "payments": len(self.payments),
            "charges": len(self.charges),
            "refunds": len(self.refunds),
            "payouts": len(self.payouts),
            "disputes": len(self.disputes),
            "faults": self.faults.config.to_dict(),
            "faults_injected": self.faults.injected,
            "webhook": self.webhooks.config.to_dict() if self.webhooks.config else None,
            "settings": self.settings.to_dict(),
        }


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.connectors: dict[str, ConnectorState] = {}

    def connector(self, name: str) -> ConnectorState:
        """The connector's state, created on first use (callers hold the lock)."""
        state = self.connectors.get(name)
        if state is None:
            state = self.connectors[name] = ConnectorState(name)
        return state

    def forget(self, name: str) -> bool:
        state = self.connectors.pop(name, None)
        if state is None:
            return False
        state.webhooks.retired = True  # queued deliveries for it are dropped
        return True

    def reset(self) -> None:
        for name in list(self.connectors):
            self.forget(name)


SCHEDULER = Scheduler()
DISPATCHER = WebhookDispatcher(SCHEDULER)
STORE = Store()
