"""Settlement: pending funds become available, per capture once its connector's settlement
delay has passed (capped at the pending balance), or as an amount for a merchant or a seller."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.core.errors import PlatformError
from apps.ledger import chart
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction, LedgerEntry
from apps.ledger.services._shared import _check_amount, _request_hash
from apps.ledger.services.engine import Entry, _Account, _execute, _Journal
from apps.ledger.services.posting import ledger_post

logger = logging.getLogger(__name__)

Kind = JournalTransaction.Kind
# the source type of the settlement journals posted from PSP settlement reports (issue 14)
SETTLED_BY_REPORT = "settlement_report"
Phase = LedgerEntry.Phase


def ledger_release_pending_to_available(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    amount: int,
    idempotency_key: str,
    seller_id: str | int | None = None,
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
) -> JournalTransaction:
    """Moves settled funds from pending to available (merchant, or one seller)."""
    _check_amount(amount, positive=True)
    pending = chart.MERCHANT_PENDING if seller_id is None else chart.seller_pending(seller_id)
    return ledger_post(
        merchant_id=merchant_id,
        livemode=livemode,
        currency=currency,
        kind=Kind.FUNDS_RELEASE,
        idempotency_key=idempotency_key,
        legs=[Leg.debit(pending, amount), Leg.credit(chart.available_for(pending), amount)],
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
    )


def ledger_release_settled_amount(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    amount: int,
    idempotency_key: str,
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
) -> JournalTransaction | None:
    """Releases up to `amount` of the merchant's pending funds to available because the PSP
    settled them (issue 14: on settlement, not on a timer), capped at the pending balance at
    that moment like the timer's release. None when there was nothing to release."""
    _check_amount(amount, positive=True)
    pending, available = chart.MERCHANT_PENDING, chart.MERCHANT_AVAILABLE

    def entries_after_lock(accounts: dict[str, _Account]) -> list[Entry]:
        release = min(amount, max(0, accounts[pending].posted_balance))
        if release <= 0:
            return []
        return [(pending, release, Phase.POSTED), (available, -release, Phase.POSTED)]

    try:
        return _execute(
            _Journal(
                kind=Kind.FUNDS_RELEASE,
                merchant_id=merchant_id,
                livemode=livemode,
                currency=currency,
                idempotency_key=idempotency_key,
                request_hash=_request_hash(
                    {"op": "settled_release", "key": idempotency_key, "amount": amount}
                ),
                metadata=metadata or {},
                codes=(pending, available),
                source_type=source_type,
                source_id=source_id,
                entries_after_lock=entries_after_lock,
            )
        )
    except PlatformError as exc:
        if getattr(exc, "code", "") in ("journal_empty", "legs_empty"):
            return None
        raise


def _release_capture(capture: JournalTransaction, *, merchant_pending: bool = True):
    """Makes a capture's pending credits available. Each release is capped at the pending
    balance at that moment, so refunds and disputes taken from pending funds before the release
    reduce what becomes available (and a negative pending balance nets against later captures).
    `merchant_pending=False`: everything but the merchant's own pending funds (a connector
    settled by reports releases those from the report)."""
    credited: dict[str, int] = defaultdict(int)
    for code, amount in LedgerEntry.objects.filter(
        transaction_id=capture.pk, phase=Phase.POSTED, amount__lt=0
    ).values_list("account__code", "amount"):
        if chart.is_pending_funds(code) and (merchant_pending or code != chart.MERCHANT_PENDING):
            credited[code] -= amount

    def entries_after_lock(accounts: dict[str, _Account]) -> list[Entry]:
        entries: list[Entry] = []
        for code in sorted(credited):
            release = min(credited[code], max(0, accounts[code].posted_balance))
            if release > 0:
                entries.append((code, release, Phase.POSTED))
                entries.append((chart.available_for(code), -release, Phase.POSTED))
        return entries

    codes = tuple(credited) + tuple(chart.available_for(code) for code in credited)
    return _execute(
        _Journal(
            kind=Kind.FUNDS_RELEASE,
            merchant_id=capture.merchant_id,
            livemode=capture.livemode,
            currency=capture.currency,
            idempotency_key=f"{capture.public_id}:funds_release",
            request_hash=_request_hash({"op": "funds_release", "settles": capture.public_id}),
            metadata={"capture": capture.public_id},
            codes=codes,
            source_type=capture.source_type,
            source_id=capture.source_id,
            settles_id=capture.pk,
            entries_after_lock=entries_after_lock,
        )
    )


def ledger_release_settled(
    *,
    delays_by_connector: Mapping[str, int],
    default_delay_seconds: int,
    now: datetime | None = None,
    batch_size: int = 500,
    skip_connectors: frozenset[str] = frozenset(),
) -> int:
    """Releases the pending funds of every capture older than its connector's settlement delay
    (seconds; the connector is the one whose receivable the capture debited). Returns how many
    captures were released. Reversed captures are skipped: their funds went back already."""
    now = now or timezone.now()
    receivables = {chart.psp_receivable(c): int(d) for c, d in delays_by_connector.items()}
    due = (
        JournalTransaction.objects.filter(kind=Kind.CAPTURE)
        .filter(~Exists(JournalTransaction.objects.filter(settles_id=OuterRef("pk"))))
        .filter(~Exists(JournalTransaction.objects.filter(reverses_id=OuterRef("pk"))))
        .order_by("created_at", "id")
    )

    def on_receivable(codes):
        return Exists(
            LedgerEntry.objects.filter(transaction_id=OuterRef("pk"), account__code__in=codes)
        )

    # connectors whose funds are released by their settlement reports (issue 14) are skipped:
    # the timer is only the fallback for connectors without reports. A receivable once settled
    # from a report (reconciliation's journals) counts as such, as do `skip_connectors`.
    skipped = [chart.psp_receivable(c) for c in skip_connectors] + list(
        LedgerEntry.objects.filter(
            transaction__kind=Kind.SETTLEMENT,
            transaction__source_type=SETTLED_BY_REPORT,
            account__code__startswith=chart.PSP_RECEIVABLE + ":",
        )
        .values_list("account__code", flat=True)
        .distinct()
    )
    batches = [
        due.filter(on_receivable([code]), created_at__lte=now - timedelta(seconds=delay))
        for code, delay in receivables.items()
        if code not in skipped
    ]
    batches.append(
        due.filter(created_at__lte=now - timedelta(seconds=int(default_delay_seconds))).exclude(
            on_receivable(list(receivables) + skipped)
        )
    )
    # A report settles the merchant's own pending funds; the sellers' shares and the surcharge
    # revenue in the same captures are released here, after the connector's delay, as before.
    others = due.filter(
        Exists(
            LedgerEntry.objects.filter(
                transaction_id=OuterRef("pk"), amount__lt=0, phase=Phase.POSTED
            ).filter(
                Q(account__code__startswith=chart.SELLER_PENDING + ":")
                | Q(account__code=chart.MERCHANT_SURCHARGE)
            )
        )
    )
    report_batches = [
        others.filter(
            on_receivable([code]),
            created_at__lte=now - timedelta(seconds=receivables.get(code, default_delay_seconds)),
        )
        for code in dict.fromkeys(skipped)
    ]
    released = 0
    for batches_of, merchant_pending in ((batches, True), (report_batches, False)):
        for batch in batches_of:
            for capture in batch[:batch_size]:
                try:
                    _release_capture(capture, merchant_pending=merchant_pending)
                    released += 1
                except PlatformError:
                    # one capture must not block the others; the next run tries it again
                    logger.exception("ledger: could not release capture %s", capture.public_id)
    return released
