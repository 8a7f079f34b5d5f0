"""The connector gateway: the one way any part of the platform calls a PSP.

Every PSP operation (authorize, the 3-D Secure result, capture, cancel, refund, inquiry, probe,
payouts, inbound notification parsing) goes through a function here. For each call the gateway:

- builds the connector's configuration: the endpoint from the platform's allow-list (a row that
  does not fit is refused: ERROR, `RequestError.CONFIGURATION`, nothing sent) and the decrypted
  credentials, decrypted here and nowhere else on the way to a PSP;
- picks the adapter for the connector type;
- applies the operation's policy (`POLICIES`): whether an open circuit breaker may refuse it
  without sending, and whether its answer counts toward the connector's health;
- turns any adapter exception into a normalized result with `raw_code="adapter_exception"`
  (UNKNOWN for operations that may have moved money, ERROR for those that cannot), never a 500;
- times the call.

Transport failures are classified once, in `apps.psp_adapters.http` (not sent: ERROR and
retry-safe; maybe sent: UNKNOWN, resolved by inquiry, never by a blind re-send); the payout
provider's calls go through the same client, so a lost payout request is classified exactly as
a lost payment.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from apps.connectors import endpoints, health
from apps.connectors.models import Connector
from apps.connectors.services import connector_config, connector_endpoint_url, evaluate_recorded
from apps.core import metrics, tracing
from apps.core.db import release_pooled_connection
from apps.psp_adapters import breaker as breakers
from apps.psp_adapters.contract import (
    AuthorizeRequest,
    CancelRequest,
    CaptureRequest,
    ConnectorConfig,
    DisputeAcceptRequest,
    DisputeEvidenceRequest,
    Outcome,
    PayoutRequest,
    PayoutResult,
    ProviderOutcome,
    PSPResult,
    RefundRequest,
    ReportParseError,
    RequestError,
    RetrieveRequest,
    SettlementLine,
    SettlementPayout,
    SettlementReportRef,
    WebhookEvent,
)
from apps.psp_adapters.registry import get_adapter
from apps.psp_adapters.settlement import SettlementReportUnavailable

logger = logging.getLogger(__name__)


class Operation(enum.StrEnum):
    AUTHORIZE = "authorize"
    ACTION_RESULT = "action_result"  # 3-D Secure: what the shopper came back with
    CAPTURE = "capture"
    CANCEL = "cancel"
    REFUND = "refund"
    INQUIRY = "inquiry"
    PROBE = "probe"
    PAYOUT = "payout"
    SETTLEMENT_REPORT = "settlement_report"  # issue 14: list, download, payouts of a report
    DISPUTE = "dispute"  # evidence, submission, acceptance of a dispute


@dataclass(frozen=True)
class Policy:
    # an open breaker refuses the call without sending it (the caller may fail over)
    short_circuit: bool
    # the answer is counted by the breaker and kept in the connector's rolling health and
    # authorization rates (what routing reads to choose where new payments go)
    counts_toward_health: bool
    # what an adapter exception becomes: UNKNOWN where the PSP may have acted
    on_exception: Outcome


# Breakers and health decide where *new* payments go. An operation on a payment the connector
# already holds (capture, cancel, refund, inquiry, the 3-D Secure result) must reach that PSP
# even while authorizations fail over elsewhere, and its answers would skew the authorization
# rates routing reads: none of them is short-circuited or counted.
POLICIES: dict[Operation, Policy] = {
    Operation.AUTHORIZE: Policy(
        short_circuit=True, counts_toward_health=True, on_exception=Outcome.UNKNOWN
    ),
    Operation.ACTION_RESULT: Policy(False, False, Outcome.UNKNOWN),
    Operation.CAPTURE: Policy(False, False, Outcome.UNKNOWN),
    Operation.CANCEL: Policy(False, False, Outcome.UNKNOWN),
    Operation.REFUND: Policy(False, False, Outcome.UNKNOWN),
    Operation.INQUIRY: Policy(False, False, Outcome.UNKNOWN),
    Operation.PROBE: Policy(False, False, Outcome.ERROR),
    Operation.PAYOUT: Policy(False, False, Outcome.UNKNOWN),
    # reports move no money and say nothing about authorizations: never short-circuited, never
    # counted; any failure is "not now" (SettlementReportUnavailable), retried by the next fetch
    Operation.SETTLEMENT_REPORT: Policy(False, False, Outcome.ERROR),
    # a dispute answer goes to the PSP that holds the payment, whatever its health
    Operation.DISPUTE: Policy(False, False, Outcome.UNKNOWN),
}


def _refused(exc: endpoints.EndpointRefused) -> PSPResult:
    return PSPResult(
        outcome=Outcome.ERROR,
        raw_code=exc.code,
        raw_message=exc.message[:500],
        retryable_elsewhere=True,
        request_error=RequestError.CONFIGURATION,
    )


def _config(connector: Connector) -> ConnectorConfig | PSPResult:
    try:
        connector_endpoint_url(connector)  # defence in depth: logs and refuses a bad row
        return connector_config(connector)
    except endpoints.EndpointRefused as exc:
        return _refused(exc)


def call(
    connector: Connector,
    operation: Operation,
    send: Callable[[Any], PSPResult],
    *,
    reference: str,
    facts: dict | None = None,
    preread: breakers.Preread | None = None,
) -> PSPResult:
    """One PSP operation under its policy: `send(adapter)` performs it. The functions below are
    the operations the platform has; a new one (dispute evidence, a settlement report) is one
    more function and one more policy here. Each call is a span (connector, operation, outcome;
    never the request) and a sample of the PSP latency and outcome metrics (issue 17).
    `preread`: a Redis read the request still needs (the card's CVC), in the round trip that
    reads the breaker's state."""
    started = time.monotonic()
    with tracing.span(
        "pp.psp_call",
        connector=connector.public_id,
        psp=connector.connector_type,
        operation=str(operation),
        reference=reference,
    ) as span:
        result = _call(
            connector, operation, send, reference=reference, facts=facts, preread=preread
        )
        span.set_attribute("pp.outcome", str(result.outcome))
        if result.decline_code:
            span.set_attribute("pp.decline_code", result.decline_code[:60])
    metrics.psp_call_observed(
        psp=connector.connector_type,
        operation=str(operation),
        outcome=str(result.outcome),
        seconds=result.latency_ms / 1000 if result.latency_ms else time.monotonic() - started,
    )
    return result


def _call(
    connector: Connector,
    operation: Operation,
    send: Callable[[Any], PSPResult],
    *,
    reference: str,
    facts: dict | None,
    preread: breakers.Preread | None = None,
) -> PSPResult:
    policy = POLICIES[operation]
    config = _config(connector)
    if isinstance(config, PSPResult):
        return config
    adapter = get_adapter(config)
    # nothing below reads the database until the PSP answers: the connection goes back to the
    # pool for the wait (only when pooled and outside a transaction; apps.core.db)
    release_pooled_connection()
    started = time.monotonic()

    def guarded() -> PSPResult:
        try:
            return send(adapter)
        except Exception:  # an adapter bug: never a 500, never a dangling payment
            logger.exception(
                "gateway: adapter raised on %s for %s (%s)",
                operation,
                reference,
                connector.public_id,
            )
            return PSPResult(
                outcome=policy.on_exception,
                raw_code="adapter_exception",
                raw_message="the adapter failed; the outcome is resolved by inquiry"
                if policy.on_exception == Outcome.UNKNOWN
                else "the adapter failed",
            )

    if policy.short_circuit or policy.counts_toward_health:
        recorded: list[health.Recorded] = []

        def bookkeeping(result: PSPResult, pipe) -> Callable[[list], None]:
            return health.record_on(
                pipe,
                connector.public_id,
                result,
                facts or {},
                result.latency_ms,
                recorded.append,
            )

        result = health.breaker(connector.public_id).call(
            guarded, bookkeeping=bookkeeping, preread=preread
        )
        if recorded:
            evaluate_recorded(connector, recorded[0])
    else:
        if preread is not None:
            health.preread_alone(preread)
        result = guarded()
    if not result.latency_ms:
        result = replace(result, latency_ms=int((time.monotonic() - started) * 1000))
    return result


def endpoint_check(connector: Connector) -> str:
    """Where the connector's requests would go; raises EndpointRefused (502 api_error, nothing
    sent) when the row does not fit the platform's allow-list. Services that change state
    before their PSP call check first, so a refused connector changes nothing."""
    return connector_endpoint_url(connector)


EndpointRefused = endpoints.EndpointRefused
# re-exported for the callers of the settlement report operations
REPORT_ERRORS = (ReportParseError, SettlementReportUnavailable)

# --------------------------------------------------------------------------- payments


def authorize(
    *,
    connector: Connector,
    request: AuthorizeRequest | Callable[[], AuthorizeRequest],
    facts: dict,
    reference: str = "",
    preread: breakers.Preread | None = None,
) -> PSPResult:
    """Under the connector's circuit breaker (state shared in Redis): a breaker that is open by
    the time of the call refuses without sending (ERROR, retryable elsewhere); the answer is
    recorded in the connector's health and segment rates (`facts`: brand, currency…).

    `preread` rides in the breaker's round trip before the call; `request` may then be a
    function that builds the request from what it read (called only when the request is sent;
    `reference`: the attempt's id)."""
    if callable(request):
        build = request
    else:
        reference, build = request.attempt_id, lambda: request
    return call(
        connector,
        Operation.AUTHORIZE,
        lambda adapter: adapter.authorize(build()),
        reference=reference,
        facts=facts,
        preread=preread,
    )


def action_result(*, connector: Connector, request: RetrieveRequest) -> PSPResult:
    """After a redirect (3-D Secure): the PSP's view of the authorization, completed from what
    the shopper came back with (`request.action_result`) where the PSP needs it."""
    return call(
        connector,
        Operation.ACTION_RESULT,
        lambda adapter: adapter.retrieve(request),
        reference=request.attempt_id,
    )


def capture(*, connector: Connector, request: CaptureRequest) -> PSPResult:
    return call(
        connector,
        Operation.CAPTURE,
        lambda adapter: adapter.capture(request),
        reference=request.psp_reference,
    )


def cancel(*, connector: Connector, request: CancelRequest) -> PSPResult:
    return call(
        connector,
        Operation.CANCEL,
        lambda adapter: adapter.cancel(request),
        reference=request.psp_reference,
    )


def refund(*, connector: Connector, request: RefundRequest) -> PSPResult:
    return call(
        connector,
        Operation.REFUND,
        lambda adapter: adapter.refund(request),
        reference=request.refund_id,
    )


def inquire(
    *,
    connector: Connector,
    attempt_id: str,
    idempotency_key: str,
    psp_reference: str,
    attempt_age_seconds: float,
    original: Callable[[], AuthorizeRequest],
) -> PSPResult:
    """What happened to an authorization whose outcome is unknown, asked the way the PSP
    supports it. Within the PSP's idempotency window (the adapter's `resend_window_seconds`:
    Stripe 20 of its 24 h, Adyen 30 of its 31 days) the original request may be re-sent with its
    key (the PSP answers with the first result and charges nothing new): always for a PSP
    without a payment lookup (Adyen), and for the others when no reference is known. `original`
    builds that request (it needs the card) only when it is sent. Past the window a re-send
    would be a new charge: only a lookup is asked."""

    def send(adapter) -> PSPResult:
        needs_resend = not psp_reference or not adapter.has_payment_lookup
        resend = needs_resend and attempt_age_seconds < adapter.resend_window_seconds
        return adapter.retrieve(
            RetrieveRequest(
                attempt_id=attempt_id,
                idempotency_key=idempotency_key,
                psp_reference=psp_reference,
                original=original() if resend else None,
                attempt_age_seconds=attempt_age_seconds,
            )
        )

    return call(connector, Operation.INQUIRY, send, reference=attempt_id)


def refund_inquire(
    *, connector: Connector, request: RefundRequest, refund_age_seconds: float
) -> PSPResult:
    """What happened to a refund whose outcome is not applied yet (its answer was lost, the
    process that sent it died, the PSP's notification has not come), asked the way the PSP
    supports it and never as a second refund. With a refund lookup (Stripe) the refund is looked
    up. When the PSP has no such refund, or no lookup (Adyen), the original request is re-sent
    with the refund's own key while the PSP still keeps that key (the adapter's
    `resend_window_seconds`): the PSP answers from its idempotency store, or processes the
    refund now, once. Past the window a re-send would be a new refund: only the lookup counts."""

    def send(adapter) -> PSPResult:
        looked_up = PSPResult(outcome=Outcome.UNKNOWN, raw_code="no_refund_lookup")
        if adapter.has_refund_lookup:
            looked_up = adapter.retrieve_refund(request)
            if not (looked_up.outcome == Outcome.UNKNOWN and looked_up.not_charged):
                return looked_up
        if refund_age_seconds < adapter.resend_window_seconds:
            return adapter.refund(request)
        return looked_up

    return call(connector, Operation.INQUIRY, send, reference=request.refund_id)


def probe(*, connector: Connector) -> PSPResult:
    """One harmless request (a lookup of a payment that cannot exist): an answer below 500
    means the PSP is up. Around the breaker: probes decide re-enabling, not routing."""
    return call(
        connector,
        Operation.PROBE,
        lambda adapter: adapter.probe(),
        reference="probe",
    )


# --------------------------------------------------------------------------- disputes


def dispute_submit_evidence(*, connector: Connector, request: DisputeEvidenceRequest) -> PSPResult:
    """The merchant's evidence (and, with `submit`, the answer) in the PSP's dialect."""
    return call(
        connector,
        Operation.DISPUTE,
        lambda adapter: adapter.dispute_submit_evidence(request),
        reference=request.psp_dispute_id,
    )


def dispute_accept(*, connector: Connector, request: DisputeAcceptRequest) -> PSPResult:
    """The merchant concedes the dispute."""
    return call(
        connector,
        Operation.DISPUTE,
        lambda adapter: adapter.dispute_accept(request),
        reference=request.psp_dispute_id,
    )


# --------------------------------------------------------------------------- notifications


@dataclass(frozen=True)
class NotificationReader:
    """Checks and parses one connector's inbound notifications with its secret, decrypted once
    (the inbound path keeps a reader per connector for a few seconds)."""

    connector_id: str
    connector_type: str
    _adapter: Any

    def verify(self, headers: dict[str, str], body: bytes) -> None:
        """Raises WebhookVerificationError (missing, malformed, wrong or stale signature)."""
        self._adapter.verify_webhook(headers, body)

    def parse(self, body: bytes) -> list[WebhookEvent]:
        """Normalized events; raises ValueError when malformed."""
        return self._adapter.parse_webhook(body)


def notification_reader(*, connector: Connector) -> NotificationReader:
    """Nothing is sent, so an endpoint refusal does not apply to reading notifications."""
    return NotificationReader(
        connector.public_id, connector.connector_type, get_adapter(connector_config(connector))
    )


# --------------------------------------------------------------------------- payouts


def _payout_result(result: PSPResult) -> PayoutResult:
    """A transport failure of a payout call, classified by the same client as payments."""
    outcome = (
        ProviderOutcome.RETRYABLE
        if result.outcome == Outcome.ERROR and result.retryable_elsewhere
        else ProviderOutcome.UNKNOWN
    )
    return PayoutResult(outcome, http_status=result.http_status)


def payout_create(*, request: PayoutRequest) -> PayoutResult:
    """Sends a payout to the platform's payout provider (settings, never a merchant's)."""
    return _payout_call(lambda adapter: adapter.create_payout(request), request.payout_id)


def payout_retrieve(*, reference: str, payout_id: str = "") -> PayoutResult:
    return _payout_call(
        lambda adapter: adapter.retrieve_payout(reference=reference, payout_id=payout_id),
        payout_id or reference,
    )


def _payout_call(send: Callable[[Any], PayoutResult], reference: str) -> PayoutResult:
    adapter = get_adapter(endpoints.payout_provider_config())
    started = time.monotonic()
    try:
        result = send(adapter)
    except Exception:
        logger.exception("gateway: payout adapter raised for %s", reference)
        result = PayoutResult(ProviderOutcome.UNKNOWN)
    if isinstance(result, PSPResult):
        result = _payout_result(result)
    logger.info(
        "payout provider: %s -> %s (HTTP %s, %d ms)",
        reference,
        result.outcome,
        result.http_status,
        (time.monotonic() - started) * 1000,
    )
    return result


# --------------------------------------------------------------------------- settlement reports


def _report_adapter(connector: Connector):
    config = _config(connector)
    if isinstance(config, PSPResult):
        raise SettlementReportUnavailable(f"connector refused: {config.raw_code}")
    return get_adapter(config)


def _report_call(connector: Connector, what: str, send: Callable[[Any], Any]) -> Any:
    """A settlement report operation (Operation.SETTLEMENT_REPORT's policy): outside the
    breaker and health; an adapter failure is SettlementReportUnavailable, never a 500."""
    adapter = _report_adapter(connector)
    started = time.monotonic()
    try:
        return send(adapter)
    except SettlementReportUnavailable:
        raise
    except Exception as exc:
        logger.exception("gateway: adapter raised on %s for %s", what, connector.public_id)
        raise SettlementReportUnavailable(f"the adapter failed on {what}") from exc
    finally:
        logger.info(
            "gateway: %s %s for %s in %d ms",
            Operation.SETTLEMENT_REPORT,
            what,
            connector.public_id,
            (time.monotonic() - started) * 1000,
        )


def settlement_reports_list(
    *, connector: Connector, cursor: str, until: str
) -> list[SettlementReportRef]:
    """The reports the PSP has after `cursor` (the adapter's own cursor: a batch number or a
    day) up to the day `until`."""
    return _report_call(
        connector,
        "list",
        lambda adapter: adapter.list_settlement_reports(cursor=cursor, until=until),
    )


def settlement_report_download(
    *, connector: Connector, ref: SettlementReportRef
) -> Iterator[bytes]:
    """The report's raw bytes as a stream of chunks (never the whole file in memory)."""
    return _report_call(connector, "download", lambda a: a.download_settlement_report(ref))


def settlement_report_lines(
    *, connector: Connector, raw_lines: Iterable[bytes], filename: str, merchant_account: str = ""
) -> Iterator[SettlementLine]:
    """Parses a report line by line in the connector's format (nothing is sent; also used for
    files uploaded by hand). Adyen lines must be for `merchant_account`, by default the
    connector's own. Raises ReportParseError on the first line that does not parse."""
    adapter = get_adapter(connector_config(connector))
    return adapter.iter_settlement_report(
        raw_lines, filename=filename, merchant_account=merchant_account
    )


def settlement_payouts(
    *, connector: Connector, payout_ids: Iterable[str]
) -> list[SettlementPayout]:
    """The payouts a report's lines belong to, where the report does not carry them (Stripe)."""
    return _report_call(connector, "payouts", lambda a: a.settlement_payouts(list(payout_ids)))
