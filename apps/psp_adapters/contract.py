"""The PSP-neutral adapter contract.

Adapters take these dataclasses and return these dataclasses. They never touch the database,
never import another app's models, and never read Django settings deep inside: everything a call
needs (credentials, base URL, timeouts) arrives in a `ConnectorConfig`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


class Outcome(enum.StrEnum):
    APPROVED = "approved"
    REQUIRES_ACTION = "requires_action"
    PENDING = "pending"  # accepted, final result arrives later (webhook or inquiry)
    SOFT_DECLINE = "soft_decline"  # another PSP (or a later retry) may approve
    HARD_DECLINE = "hard_decline"  # no PSP will approve; never fail over
    UNKNOWN = "unknown"  # the PSP may have processed it: resolve by inquiry, never re-charge
    ERROR = "error"  # failed before the PSP processed anything: safe to fail over


@dataclass(frozen=True)
class ConnectorConfig:
    connector_id: str  # our public id of the connector (mca_…)
    connector_type: str  # "stripe" | "adyen"
    base_url: str
    credentials: dict[
        str, str
    ]  # e.g. {"api_key": …} or {"api_key", "merchant_account", "hmac_key"}
    webhook_secret: str = ""
    connect_timeout: float = 2.0
    read_timeout: float = 10.0


@dataclass(frozen=True)
class CardData:
    """Card data handed over by the vault for one call. Never logged, never stored."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str | None = None
    holder_name: str | None = None

    def __repr__(self) -> str:  # keep card numbers out of tracebacks and logs
        return f"CardData(last4={self.number[-4:]}, exp={self.exp_month:02d}/{self.exp_year})"


@dataclass(frozen=True)
class AuthorizeRequest:
    attempt_id: str  # our public id of the attempt (pa_…)
    idempotency_key: str  # derived from the attempt: the same attempt never charges twice
    amount: int  # minor units
    currency: str  # lower-case ISO 4217
    capture: bool  # True: automatic capture; False: authorize only
    card: CardData
    description: str = ""
    customer_email: str = ""
    return_url: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # SCA (apps/risk/sca.py): "" (the PSP and issuer decide) | "any" (ask for 3-D Secure) |
    # "challenge" (ask for a challenge); the exemption claimed: "" | "low_value" |
    # "transaction_risk_analysis" | "merchant_initiated". Each adapter says it in its dialect.
    three_d_secure: str = ""
    sca_exemption: str = ""


@dataclass(frozen=True)
class CaptureRequest:
    psp_reference: str
    idempotency_key: str
    amount: int
    currency: str


@dataclass(frozen=True)
class CancelRequest:
    psp_reference: str
    idempotency_key: str


@dataclass(frozen=True)
class RefundRequest:
    psp_reference: str
    idempotency_key: str
    refund_id: str  # our public id of the refund (re_…)
    amount: int
    currency: str
    reason: str = ""
    # for a lookup (retrieve_refund): the PSP's own id of the refund, when its answer came
    refund_psp_reference: str = ""


@dataclass(frozen=True)
class EvidenceDocument:
    """A merchant's evidence file, its content handed over for one call."""

    field: str  # Stripe's evidence field (receipt, shipping_documentation, uncategorized_file…)
    file_id: str  # our file id (file_…)
    content_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class DisputeEvidenceRequest:
    """Answer a dispute: the text evidence in Stripe's field names, the documents, and submit.
    Adapters send it in their dialect (Stripe POST /v1/disputes/{id}; Adyen's dispute service
    supplyDefenseDocument + defendDispute)."""

    psp_dispute_id: str
    psp_reference: str  # the payment
    idempotency_key: str
    evidence: dict[str, str]
    documents: tuple[EvidenceDocument, ...] = ()
    submit: bool = True


@dataclass(frozen=True)
class DisputeAcceptRequest:
    psp_dispute_id: str
    psp_reference: str
    idempotency_key: str


@dataclass(frozen=True)
class RetrieveRequest:
    """Status inquiry. `psp_reference` may be empty when the authorize response was lost;
    adapters then look the payment up by our attempt id / idempotency key."""

    attempt_id: str
    idempotency_key: str
    psp_reference: str = ""
    # The original authorization, for PSPs whose only inquiry is an idempotent re-send
    # (same Idempotency-Key: the PSP answers with the first result and charges nothing new).
    original: AuthorizeRequest | None = None
    # After a redirect (3-D Secure): the query parameters the PSP sent the shopper back with
    # (Adyen's `redirectResult`), for PSPs that complete the payment from them; and what the
    # authorization was for.
    action_result: dict[str, str] | None = None
    amount: int = 0
    capture: bool = False
    # seconds since the attempt was first sent: a PSP whose lookup is eventually consistent
    # (Stripe's search) may only call an empty answer conclusive once it has settled
    attempt_age_seconds: float = 0.0


class RequestError(enum.StrEnum):
    """Why a PSP refused a request itself, before processing it: never the shopper's card."""

    NONE = ""
    AUTHENTICATION = "authentication"  # credentials refused (401/403): the connector's setup
    INVALID_REQUEST = "invalid_request"  # malformed for the PSP (400/404/422): our bug or setup
    RATE_LIMITED = "rate_limited"  # 429: try again later or elsewhere
    CONFIGURATION = "configuration"  # never sent: the connector's setup is refused by the platform


@dataclass(frozen=True)
class PSPResult:
    outcome: Outcome
    psp_reference: str = ""
    decline_code: str = ""  # normalized, Stripe vocabulary
    raw_code: str = ""  # the PSP's own code, kept for audit
    raw_message: str = ""
    http_status: int | None = None
    amount: int | None = None  # amount the PSP reports (authorized/captured/refunded)
    captured: bool | None = None  # for retrieve: whether the PSP has captured
    next_action: dict[str, Any] | None = None  # 3DS redirect
    latency_ms: int = 0
    # True when the error happened before the PSP could have processed anything
    # (connection refused, 4xx validation). Only then may the caller fail over.
    retryable_elsewhere: bool = False
    # An authoritative, well-formed answer that the payment asked about charged nothing: a
    # decline, a request the PSP processed and failed (Adyen resultCode Error), or a lookup
    # that found no such payment once it could (Stripe search). An inquiry may conclude
    # "not charged" only from this or a decline; any other answer keeps the outcome unknown.
    not_charged: bool = False
    # the PSP object's own status when the answer carried it (Stripe's PaymentIntent status in
    # an error, e.g. "canceled" when a capture came too late)
    psp_status: str = ""
    # set when the PSP refused the request itself (see RequestError)
    request_error: RequestError = RequestError.NONE
    # the card network's advice on a decline: Mastercard's merchant advice code ("03", "21":
    # do not try again); Stripe's network_advice_code, Adyen's additionalData.merchantAdviceCode
    network_advice_code: str = ""


@dataclass(frozen=True)
class DisputeNotice:
    """What a dispute notification says, normalized by the adapter (Stripe's vocabulary), with
    the PSP's own words kept beside it. `stage`/`status` are "" when the PSP said nothing that
    maps (the service then keeps the dispute's own)."""

    psp_dispute_id: str
    raw_status: str  # Stripe dispute.status / Adyen additionalData.disputeStatus
    raw_event: str  # Stripe event type / Adyen eventCode
    stage: str = ""  # inquiry | chargeback | pre_arbitration | arbitration
    status: str = ""  # warning_needs_response … won | lost | accepted | expired
    reason: str = "general"  # fraudulent | product_not_received | duplicate | …
    network_reason_code: str = ""
    evidence_due_by: int | None = None  # unix seconds, as the PSP said
    funds: str = ""  # "withdrawn" | "reinstated" | "": what this notification did to the money
    is_charge_refundable: bool = False
    informational: bool = False  # a fraud notification: recorded on the payment, no dispute
    fee_returned: int = 0  # a reinstatement that also gives the dispute fee back (minor units)


@dataclass(frozen=True)
class WebhookEvent:
    """A PSP notification normalized to what our services understand."""

    psp_event_id: str  # for de-duplication on (connector, psp_event_id)
    event_type: str  # authorization | capture | refund | cancellation | payout | other
    psp_reference: str  # PSP's payment reference
    success: bool
    attempt_id: str = ""  # our attempt id if the PSP echoes it (metadata / merchantReference)
    refund_id: str = ""
    amount: int | None = None
    currency: str = ""
    raw_code: str = ""
    decline_code: str = ""
    occurred_at: int | None = None  # unix seconds
    dispute: DisputeNotice | None = None  # event_type "chargeback": the dispute it is about


@dataclass(frozen=True)
class SettlementLine:
    """One row of a PSP settlement report, amounts already converted to minor units."""

    psp_reference: str
    record_type: str  # charge | refund | chargeback | fee | payout | adjustment
    gross: int
    fee: int
    net: int
    currency: str
    settled_at: str  # ISO date
    merchant_reference: str = ""
    # issue 14: the streaming parsers fill these too
    modification_reference: str = ""  # Adyen capture/refund pspReference, Stripe ch_/re_ id
    batch: str = ""  # Adyen batch number, Stripe automatic payout id
    payout_id: str = ""  # payout lines (Adyen MerchantPayout), and Stripe's automatic payout
    merchant_account: str = ""
    line_number: int = 0  # in the file, header = 1


@dataclass(frozen=True)
class SettlementReportRef:
    """A settlement report the PSP has for us: what to download and how to name it."""

    name: str  # settlement_detail_report_batch_<N>.csv / payout_reconciliation.itemized.5_<day>
    cursor: str  # where the next listing starts (Adyen: batch number; Stripe: interval day)
    url: str = ""  # Stripe: the report run's file
    report_type: str = ""


@dataclass(frozen=True)
class SettlementPayout:
    payout_id: str
    amount: int
    currency: str
    status: str = ""


class ReportParseError(ValueError):
    """A report line that does not parse: the whole file is refused."""

    def __init__(self, filename: str, line: int, column: str, reason: str) -> None:
        self.filename, self.line, self.column, self.reason = filename, line, column, reason
        where = f"{filename}, line {line}" + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {reason}")


class ProviderOutcome(enum.StrEnum):
    """A payout provider's answer."""

    PAID = "paid"
    PENDING = "pending"  # in transit
    FAILED = "failed"  # returned by the bank after it was sent
    REJECTED = "rejected"  # refused (4xx): nothing was paid
    RETRYABLE = "retryable"  # not processed (not sent, 503, 429, a redirect): safe to re-send
    UNKNOWN = "unknown"  # may have been processed: re-sent later with the same key only


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


class WebhookVerificationError(Exception):
    """Raised by `verify_webhook` when a signature is missing, malformed, wrong or too old."""


class PSPAdapter(Protocol):
    connector_type: str
    # whether the PSP can be asked about a payment by reference; without it (Adyen's Checkout
    # API) an unknown outcome is resolved by the idempotent re-send of the original request
    has_payment_lookup: bool
    # whether the PSP can be asked about a refund (Stripe's GET /v1/refunds); without it (Adyen)
    # a refund's outcome comes by notification, and a lost answer is resolved by the re-send
    has_refund_lookup: bool
    # how long after the first request an identical re-send with the same Idempotency-Key is
    # still answered from the PSP's idempotency store (a safety margin under its retention);
    # later the same request would be processed as new
    resend_window_seconds: int

    def __init__(self, config: ConnectorConfig) -> None: ...

    def authorize(self, request: AuthorizeRequest) -> PSPResult: ...

    def capture(self, request: CaptureRequest) -> PSPResult: ...

    def cancel(self, request: CancelRequest) -> PSPResult: ...

    def refund(self, request: RefundRequest) -> PSPResult: ...

    def retrieve(self, request: RetrieveRequest) -> PSPResult: ...

    # the refund's current state at the PSP, for PSPs with a refund lookup
    # (`has_refund_lookup`); UNKNOWN with not_charged=True when the PSP has no such refund
    def retrieve_refund(self, request: RefundRequest) -> PSPResult: ...

    def dispute_submit_evidence(self, request: DisputeEvidenceRequest) -> PSPResult: ...

    def dispute_accept(self, request: DisputeAcceptRequest) -> PSPResult: ...

    def probe(self) -> PSPResult: ...  # a harmless request: any answer below 500 means "up"

    def verify_webhook(self, headers: dict[str, str], body: bytes) -> None: ...

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]: ...

    def parse_settlement_report(self, content: str) -> list[SettlementLine]: ...

    # issue 14: settlement reports, listed, downloaded as a stream of byte chunks, and parsed
    # line by line (a `ReportParseError` refuses the whole file)
    def list_settlement_reports(self, *, cursor: str, until: str) -> list[SettlementReportRef]: ...

    def download_settlement_report(self, ref: SettlementReportRef) -> Iterator[bytes]: ...

    def iter_settlement_report(
        self, raw_lines: Iterable[bytes], *, filename: str, merchant_account: str = ""
    ) -> Iterator[SettlementLine]: ...

    def settlement_payouts(self, payout_ids: Iterable[str]) -> list[SettlementPayout]: ...
