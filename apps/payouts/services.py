"""Payout writes. Every state change locks the payout row, moves the ledger through
`apps.ledger.services` and writes its outbox event, all in one transaction; the provider is
called outside any transaction, with an idempotency key derived from the payout id.

    create      pending      payout journal: available -> payouts_in_transit (the database
                             refuses more than the available balance, even under races)
    submit      in_transit   the provider accepted it (or paid at once: -> paid)
    mark_paid   paid         payout_paid journal: payouts_in_transit -> bank
    fail        failed       the payout journal is reversed (payout_failure): money back
    cancel      canceled     reversed; only while pending and never possibly at the provider
    retry       pending      a failed payout books a new journal (a new round, a new key)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError, PlatformError
from apps.core.money import normalize_currency, validate_amount
from apps.events.services import outbox_record_change
from apps.ledger import chart, postings
from apps.ledger import selectors as ledger_selectors
from apps.ledger import services as ledger_services
from apps.merchants import selectors as merchant_selectors
from apps.payouts.models import Payout, PayoutStatus
from apps.payouts.representations import payout_representation
from apps.psp_adapters.contract import PayoutRequest, PayoutResult, ProviderOutcome

if TYPE_CHECKING:
    from apps.merchants.models import Merchant, Seller

logger = logging.getLogger(__name__)

S = PayoutStatus
SOURCE_TYPE = "payout"
DEFAULT_MAX_PAYOUT_AMOUNT = 10**12  # minor units; the ledger's own cap is 10**15


# --------------------------------------------------------------------------- helpers


def _lock(payout_id: int) -> Payout:
    return (
        Payout.objects.select_for_update(of=("self",))
        .select_related("seller", "merchant")
        .get(pk=payout_id)
    )


def _emit(payout: Payout, event_type: str, previous: dict | None = None) -> None:
    outbox_record_change(
        obj=payout,
        object_type="payout",
        event_type=event_type,
        payload=payout_representation(payout),
        previous=previous,
    )


def _enqueue_submit(payout_id: int) -> None:
    def send() -> None:
        from apps.payouts.tasks import submit_payout

        try:
            # no publish retries: a broker outage must not slow the API; the sweep resubmits
            submit_payout.apply_async((payout_id,), retry=False)
        except Exception:
            logger.warning(
                "could not enqueue payout %s; the resubmit sweep will send it", payout_id
            )

    transaction.on_commit(send)


def _journal_key(payout: Payout) -> str:
    return f"{payout.public_id}:payout:{payout.attempt}"


def _seller_ledger_id(payout: Payout) -> str | None:
    return payout.seller.ledger_id if payout.seller_id else None


def _available_balance(
    *, merchant_id: int, livemode: bool, currency: str, seller: Seller | None
) -> int:
    if seller is None:
        for balance in ledger_selectors.balances_for_merchant(
            merchant_id=merchant_id, livemode=livemode
        ):
            if balance.currency == currency:
                return balance.available
        return 0
    return ledger_selectors.account_balance(
        merchant_id=merchant_id,
        livemode=livemode,
        currency=currency,
        code=chart.seller_available(seller.ledger_id),
    )


def _insufficient(
    *, merchant_id: int, livemode: bool, currency: str, seller: Seller | None, amount: int
) -> InvalidRequestError:
    available = _available_balance(
        merchant_id=merchant_id, livemode=livemode, currency=currency, seller=seller
    )
    whose = f"seller {seller.public_id}'s" if seller else "your"
    return InvalidRequestError(
        f"Insufficient funds: {whose} available {currency.upper()} balance is {available}, "
        f"the payout needs {amount}.",
        code="insufficient_balance",
        param="amount",
    )


def _post_payout_journal(payout: Payout) -> None:
    """Books this round against the available balance. Inside the caller's transaction: a
    refusal rolls the whole request back."""
    journal = ledger_services.ledger_post(
        merchant_id=payout.merchant_id,
        livemode=payout.livemode,
        currency=payout.currency,
        kind="payout",
        idempotency_key=_journal_key(payout),
        legs=postings.payout_legs(amount=payout.amount, seller_id=_seller_ledger_id(payout)),
        metadata={"payout": payout.public_id, "attempt": payout.attempt},
        source_type=SOURCE_TYPE,
        source_id=payout.public_id,
        description=f"payout {payout.public_id}",
    )
    payout.ledger_transaction = journal.public_id


def _pending_and_available(
    *, merchant_id: int, livemode: bool, currency: str, seller: Seller | None
) -> tuple[int, int]:
    if seller is None:
        for balance in ledger_selectors.balances_for_merchant(
            merchant_id=merchant_id, livemode=livemode
        ):
            if balance.currency == currency:
                return balance.pending, balance.available
        return 0, 0
    return tuple(
        ledger_selectors.account_balance(
            merchant_id=merchant_id, livemode=livemode, currency=currency, code=code
        )
        for code in (
            chart.seller_pending(seller.ledger_id),
            chart.seller_available(seller.ledger_id),
        )
    )


def payable_amount(
    *, merchant_id: int, livemode: bool, currency: str, seller: Seller | None
) -> int:
    """What may be paid out: the available balance, less what pending funds owe back. A
    chargeback may take a balance below zero (the PSP withdraws whatever we hold); what is owed
    then is a receivable from the merchant (or seller), recovered from its next captures, and
    no payout may leave the balance, pending included, below zero."""
    pending, available = _pending_and_available(
        merchant_id=merchant_id, livemode=livemode, currency=currency, seller=seller
    )
    return available + min(pending, 0)


def _check_not_negative(
    *, merchant_id: int, livemode: bool, currency: str, seller: Seller | None, amount: int
) -> None:
    pending, available = _pending_and_available(
        merchant_id=merchant_id, livemode=livemode, currency=currency, seller=seller
    )
    if pending >= 0:
        return  # the available balance decides (the ledger refuses an overdraft)
    whose = f"Seller {seller.public_id}'s" if seller else "Your"
    total = pending + available
    if total < 0:
        raise InvalidRequestError(
            f"{whose} {currency.upper()} balance is negative ({total}) after disputes: no "
            "payout until it is recovered.",
            code="balance_negative",
            param="amount",
        )
    if amount > total:
        raise InvalidRequestError(
            f"{whose} pending {currency.upper()} balance owes {-pending} after disputes: at most "
            f"{total} can be paid out.",
            code="balance_negative",
            param="amount",
        )


def _is_insufficient(exc: PlatformError) -> bool:
    return exc.code == "insufficient_balance"


# --------------------------------------------------------------------------- create


def payout_create(
    *,
    merchant: Merchant,
    livemode: bool,
    amount: int,
    currency: str,
    actor: Actor,
    seller: str | None = None,
    description: str = "",
    metadata: dict | None = None,
    automatic: bool = False,
    schedule_period: str = "",
) -> Payout:
    """A payout of the merchant's own balance (`seller=None`) or of one of its sellers'
    (`seller="sel_…"`), from the available balance only. Refusals (400) write nothing."""
    amount = validate_amount(
        amount,
        maximum=getattr(settings, "PAYOUT_MAX_AMOUNT", DEFAULT_MAX_PAYOUT_AMOUNT),
    )
    currency = normalize_currency(currency)
    seller_obj = None
    if seller is not None:
        seller_obj = merchant_selectors.seller_get_referenced(
            merchant_id=merchant.id, livemode=livemode, public_id=seller, param="seller"
        )
        if seller_obj.bank_currency != currency:
            raise InvalidRequestError(
                f"The seller's bank account takes {seller_obj.bank_currency.upper()} payouts, "
                f"not {currency.upper()}.",
                code="bank_account_currency_mismatch",
                param="currency",
            )
    if len(description or "") > 255:
        raise InvalidRequestError(
            "description must be at most 255 characters.",
            code="parameter_invalid",
            param="description",
        )
    _check_not_negative(
        merchant_id=merchant.id,
        livemode=livemode,
        currency=currency,
        seller=seller_obj,
        amount=amount,
    )
    try:
        with transaction.atomic():
            payout = Payout.objects.create(
                merchant=merchant,
                livemode=livemode,
                seller=seller_obj,
                amount=amount,
                currency=currency,
                automatic=automatic,
                schedule_period=schedule_period,
                description=description or "",
                metadata=metadata or {},
                destination=seller_obj.bank_token if seller_obj else "",
                destination_last4=seller_obj.bank_last4 if seller_obj else "",
            )
            _post_payout_journal(payout)
            payout.save()
            _emit(payout, "payout.created")
            audit_record(
                actor=actor,
                action="payout.created",
                object_type="payout",
                object_id=payout.public_id,
                merchant_id=merchant.id,
                livemode=livemode,
                changes={
                    "amount": [None, amount],
                    "currency": [None, currency],
                    "seller": [None, seller],
                },
            )
            _enqueue_submit(payout.pk)
    except ConflictError as exc:
        if not _is_insufficient(exc):
            raise
        raise _insufficient(
            merchant_id=merchant.id,
            livemode=livemode,
            currency=currency,
            seller=seller_obj,
            amount=amount,
        ) from exc
    return payout


# --------------------------------------------------------------------------- transitions
# (inside a transaction, with the payout locked)


def _to_in_transit(payout: Payout) -> None:
    payout.mark_in_transit()
    payout.awaiting_provider = False
    payout.last_submit_error = ""
    payout.save()
    _emit(payout, "payout.updated", {"status": S.PENDING})


def _to_paid(payout: Payout, *, arrival_date: datetime | None) -> None:
    ledger_services.ledger_post(
        merchant_id=payout.merchant_id,
        livemode=payout.livemode,
        currency=payout.currency,
        kind="payout_paid",
        idempotency_key=f"{payout.public_id}:paid",
        legs=postings.payout_paid_legs(amount=payout.amount),
        metadata={"payout": payout.public_id, "attempt": payout.attempt},
        source_type=SOURCE_TYPE,
        source_id=payout.public_id,
        description=f"payout {payout.public_id} paid",
    )
    payout.mark_paid()
    payout.paid_at = timezone.now()
    payout.arrival_date = arrival_date or payout.paid_at
    payout.awaiting_provider = False
    payout.save()
    _emit(payout, "payout.paid", {"status": S.IN_TRANSIT})


def _to_failed(payout: Payout, *, failure_code: str, failure_message: str) -> None:
    previous = payout.status
    ledger_services.ledger_reverse(
        transaction=payout.ledger_transaction,
        idempotency_key=f"{_journal_key(payout)}:failure",
        reason=f"payout failed: {failure_code}"[:255],
        kind="payout_failure",
        metadata={"payout": payout.public_id, "attempt": payout.attempt},
    )
    payout.mark_failed()
    payout.failure_code = (failure_code or "could_not_process")[:40]
    payout.failure_message = (failure_message or "")[:255]
    payout.failed_at = timezone.now()
    payout.awaiting_provider = False
    payout.save()
    _emit(payout, "payout.failed", {"status": previous})


def _arrival(result: PayoutResult) -> datetime | None:
    if result.arrival_date is None:
        return None
    try:
        return datetime.fromtimestamp(int(result.arrival_date), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- provider


def _destination(payout: Payout) -> str:
    if payout.seller_id is None:
        # merchants have no bank account on file yet: the provider account's default
        return f"merchant-{payout.merchant_id}"
    bank = merchant_selectors.seller_bank_account(seller=payout.seller)
    if bank.routing_number:
        return f"{bank.routing_number}-{bank.account_number}"
    return bank.account_number


def payout_submit(*, payout_id: int) -> Payout:
    """Sends (or re-sends, with the same key) a pending payout and applies the answer. The row
    is not locked during the call; `awaiting_provider` keeps it from being canceled meanwhile."""
    with transaction.atomic():
        payout = _lock(payout_id)
        if payout.status != S.PENDING:
            return payout
        payout.awaiting_provider = True
        payout.submit_count += 1
        payout.last_submitted_at = timezone.now()
        payout.save()
        request = PayoutRequest(
            payout_id=payout.public_id,
            idempotency_key=payout.provider_idempotency_key,
            amount=payout.amount,
            currency=payout.currency,
            destination=_destination(payout),
            description=payout.description,
        )
        attempt = payout.attempt
    # through the connector gateway: the platform's payout provider, a lost request classified
    # as payments' are (not sent: retryable; maybe sent: unknown), an adapter error unknown
    result = gateway.payout_create(request=request)
    return payout_apply_provider_result(payout_id=payout_id, attempt=attempt, result=result)


def payout_apply_provider_result(*, payout_id: int, attempt: int, result: PayoutResult) -> Payout:
    """Applies a provider answer (to a submission or a status poll). Only moves forward; an
    answer about an earlier round (before a retry) is ignored."""
    with transaction.atomic():
        payout = _lock(payout_id)
        if payout.attempt != attempt or payout.status not in (S.PENDING, S.IN_TRANSIT):
            return payout
        if result.reference and not payout.provider_reference:
            payout.provider_reference = result.reference[:100]
            payout.save()
        outcome = result.outcome
        if outcome in (ProviderOutcome.RETRYABLE, ProviderOutcome.UNKNOWN):
            if payout.status == S.PENDING:
                # RETRYABLE: definitely not processed; UNKNOWN: may be, so no cancel until known
                payout.awaiting_provider = outcome == ProviderOutcome.UNKNOWN
                payout.last_submit_error = f"{outcome} (HTTP {result.http_status})"[:200]
                payout.save()
            return payout
        if outcome in (ProviderOutcome.FAILED, ProviderOutcome.REJECTED):
            _to_failed(
                payout,
                failure_code=result.failure_code or "could_not_process",
                failure_message=result.failure_message,
            )
            return payout
        if payout.status == S.PENDING:
            _to_in_transit(payout)
        if outcome == ProviderOutcome.PAID:
            _to_paid(payout, arrival_date=_arrival(result))
    return payout


# --------------------------------------------------------------------------- operations


def payout_mark_paid(
    *, payout: Payout, actor: Actor, arrival_date: datetime | None = None
) -> Payout:
    """The bank confirmed an in-transit payout."""
    with transaction.atomic():
        payout = _lock(payout.pk)
        if payout.status == S.PAID:
            return payout
        if payout.status != S.IN_TRANSIT:
            raise ConflictError(
                f"Only an in-transit payout can be marked paid; this one is {payout.status}.",
                code="payout_not_in_transit",
            )
        _to_paid(payout, arrival_date=arrival_date)
    return payout


def payout_fail(
    *, payout: Payout, failure_code: str, actor: Actor, failure_message: str = ""
) -> Payout:
    """The provider refused or bounced the payout: the money goes back to the balance by a
    reversal of the payout journal."""
    with transaction.atomic():
        payout = _lock(payout.pk)
        if payout.status == S.FAILED:
            return payout
        if payout.status not in (S.PENDING, S.IN_TRANSIT):
            raise ConflictError(
                f"A {payout.status} payout cannot fail.", code="payout_unexpected_state"
            )
        _to_failed(payout, failure_code=failure_code, failure_message=failure_message)
    return payout


def payout_cancel(*, payout: Payout, actor: Actor) -> Payout:
    """Cancels a pending payout that the provider has not (possibly) received: reversed back
    to the balance."""
    with transaction.atomic():
        payout = _lock(payout.pk)
        if payout.status == S.CANCELED:
            return payout
        if payout.status != S.PENDING:
            raise ConflictError(
                f"Only a pending payout can be canceled; this one is {payout.status}.",
                code="payout_not_cancelable",
            )
        if payout.awaiting_provider or payout.provider_reference:
            raise ConflictError(
                "This payout may already be at the payout provider; wait for its answer.",
                code="payout_not_cancelable",
            )
        ledger_services.ledger_reverse(
            transaction=payout.ledger_transaction,
            idempotency_key=f"{_journal_key(payout)}:cancel",
            reason="payout canceled",
            metadata={"payout": payout.public_id, "attempt": payout.attempt},
        )
        payout.cancel()
        payout.canceled_at = timezone.now()
        payout.save()
        _emit(payout, "payout.canceled", {"status": S.PENDING})
        audit_record(
            actor=actor,
            action="payout.canceled",
            object_type="payout",
            object_id=payout.public_id,
            merchant_id=payout.merchant_id,
            livemode=payout.livemode,
            changes={"status": [S.PENDING, S.CANCELED]},
        )
    return payout


def payout_retry(*, payout: Payout, actor: Actor) -> Payout:
    """Sends a failed payout again: a new round books the amount against the available balance
    again (refused with `insufficient_balance` if it was spent meanwhile) and gets a new
    provider idempotency key."""
    try:
        with transaction.atomic():
            payout = _lock(payout.pk)
            if payout.status != S.FAILED:
                raise ConflictError(
                    f"Only a failed payout can be retried; this one is {payout.status}.",
                    code="payout_not_failed",
                )
            previous = {
                "status": S.FAILED,
                "failure_code": payout.failure_code,
                "balance_transaction": payout.ledger_transaction,
            }
            payout.retry()
            payout.attempt += 1
            _post_payout_journal(payout)
            payout.failure_code = payout.failure_message = ""
            payout.provider_reference = payout.last_submit_error = ""
            payout.failed_at = None
            payout.awaiting_provider = False
            payout.save()
            _emit(payout, "payout.updated", previous)
            audit_record(
                actor=actor,
                action="payout.retried",
                object_type="payout",
                object_id=payout.public_id,
                merchant_id=payout.merchant_id,
                livemode=payout.livemode,
                changes={"status": [S.FAILED, S.PENDING], "attempt": [None, payout.attempt]},
            )
            _enqueue_submit(payout.pk)
    except ConflictError as exc:
        if not _is_insufficient(exc):
            raise
        raise _insufficient(
            merchant_id=payout.merchant_id,
            livemode=payout.livemode,
            currency=payout.currency,
            seller=payout.seller,
            amount=payout.amount,
        ) from exc
    return payout


# --------------------------------------------------------------------------- periodic work


def payouts_resubmit_pending(*, older_than_seconds: int = 60, limit: int = 200) -> int:
    """Re-sends pending payouts whose submission never finished (the task was lost, the
    provider was down, or its answer unknown). Same key: the provider cannot pay twice."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    due = list(
        Payout.objects.filter(status=S.PENDING, updated_at__lte=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    for payout_id in due:
        payout_submit(payout_id=payout_id)
    return len(due)


def payouts_poll_in_transit(*, older_than_seconds: int = 0, limit: int = 200) -> int:
    """Asks the provider about in-transit payouts and applies paid / failed; returns how many
    were resolved. Unanswered or unknown ones are asked again on the next run."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    due = list(
        Payout.objects.filter(status=S.IN_TRANSIT, updated_at__lte=cutoff)
        .exclude(provider_reference="")
        .order_by("updated_at")
        .values_list("pk", "attempt", "provider_reference", "public_id")[:limit]
    )
    if not due:
        return 0
    resolved = 0
    for payout_id, attempt, reference, public_id in due:
        result = gateway.payout_retrieve(reference=reference, payout_id=public_id)
        if result.outcome not in (ProviderOutcome.PAID, ProviderOutcome.FAILED):
            continue  # still in transit, or no answer: next run
        payout = payout_apply_provider_result(payout_id=payout_id, attempt=attempt, result=result)
        resolved += payout.status in (S.PAID, S.FAILED)
    return resolved


def payouts_run_scheduled(*, now: datetime | None = None) -> int:
    """Automatic payouts: every seller whose schedule falls on today (UTC; daily by default,
    weekly on its anchor day, never for manual) is paid its whole available balance in its bank
    account's currency, at most once per day (a unique constraint, so reruns and concurrent
    runners create nothing twice). Returns how many payouts were created."""
    today = (now or timezone.now()).astimezone(UTC).date()
    period = today.isoformat()
    actor = Actor.system("payout_schedule")
    already = set(
        Payout.objects.filter(automatic=True, schedule_period=period).values_list(
            "seller_id", "currency"
        )
    )
    created = 0
    for seller in merchant_selectors.sellers_due_for_payout(on=today).select_related("merchant"):
        if (seller.pk, seller.bank_currency) in already:
            continue
        available = payable_amount(  # less what disputes left owed in pending funds
            merchant_id=seller.merchant_id,
            livemode=seller.livemode,
            currency=seller.bank_currency,
            seller=seller,
        )
        if available <= 0:
            continue
        try:
            payout_create(
                merchant=seller.merchant,
                livemode=seller.livemode,
                seller=seller.public_id,
                amount=available,
                currency=seller.bank_currency,
                actor=actor,
                automatic=True,
                schedule_period=period,
                description=f"automatic payout {period}",
            )
            created += 1
        except IntegrityError:
            pass  # a concurrent run made this period's payout
        except PlatformError as exc:
            # the balance moved since it was read, or is above the cap: the next run retries
            logger.warning("scheduled payout for %s skipped: %s", seller.public_id, exc.code)
    return created
