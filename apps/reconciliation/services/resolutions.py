"""Finance resolutions of a discrepancy (issue 14, item 6). Each one locks the discrepancy,
posts its adjusting journal (when it moves money) through the ledger's services, and writes
the audit log, in one transaction. Permissions are checked by the caller (the admin) and again
here, so no path can skip them:

- accept the PSP's figure (core.post_ledger_adjustment): the line posted as the PSP settled it,
  the difference to psp_fees (a fee mismatch) or to reconciliation write-offs;
- write off (core.write_off_discrepancy): the difference to reconciliation write-offs;
- link by hand (reconciliation.link_discrepancy): the line posted as a match of that item;
- expected later (reconciliation.defer_discrepancy): no journal;
- reopen (reconciliation.reopen_discrepancy): the resolution's journal reversed.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.connectors import selectors as connector_selectors
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError, PermissionDeniedError
from apps.intents import selectors as intent_selectors
from apps.ledger import chart, postings
from apps.ledger import selectors as ledger_selectors
from apps.ledger import services as ledger
from apps.reconciliation.models import Discrepancy, DiscrepancyKind, LineState, SettlementLine

PERMISSIONS = {
    "accept_psp": "core.post_ledger_adjustment",
    "write_off": "core.write_off_discrepancy",
    "link": "reconciliation.link_discrepancy",
    "expected_later": "reconciliation.defer_discrepancy",
    "reopen": "reconciliation.reopen_discrepancy",
}

D = Discrepancy.Status


def _check(user, action: str) -> None:
    if user is not None and not user.has_perm(PERMISSIONS[action]):
        raise PermissionDeniedError(
            f"Resolving a discrepancy this way needs the {PERMISSIONS[action]} permission.",
            code="permission_missing",
        )


def _lock(discrepancy: Discrepancy) -> Discrepancy:
    return Discrepancy.objects.select_for_update().get(pk=discrepancy.pk)


def _open_only(d: Discrepancy) -> None:
    if d.status == D.RESOLVED:
        raise ConflictError(
            f"Discrepancy {d.public_id} is already resolved.", code="discrepancy_resolved"
        )


def _post(d: Discrepancy, *, action: str, legs, connector, currency: str) -> str:
    journal = ledger.ledger_post(
        merchant_id=connector.merchant_id,
        livemode=connector.livemode,
        currency=currency,
        kind="adjustment",
        idempotency_key=f"recon:{d.public_id}:{action}:{d.resolved_count_key()}",
        legs=legs,
        metadata={"discrepancy": d.public_id, "action": action},
        source_type="discrepancy",
        source_id=d.public_id,
    )
    return journal.public_id


def _resolve(d: Discrepancy, *, resolution: str, actor: Actor, note: str, journal: str = ""):
    before = {"status": d.status, "resolution": d.resolution}
    d.status = D.RESOLVED
    d.resolution = resolution
    d.resolution_note = note[:500]
    d.resolved_by = actor.id[:150]
    d.resolved_at = timezone.now()
    d.journal = journal
    d.save(
        update_fields=[
            "status",
            "resolution",
            "resolution_note",
            "resolved_by",
            "resolved_at",
            "journal",
        ]
    )
    if d.line_id:
        SettlementLine.objects.filter(pk=d.line_id).update(state=LineState.RESOLVED)
    _audit(d, actor, f"reconciliation.discrepancy.{resolution}", before, note, journal)
    return d


def _audit(d, actor, action, before, note, journal="") -> None:
    audit_record(
        actor=actor,
        action=action,
        object_type="discrepancy",
        object_id=d.public_id,
        merchant_id=d.merchant_id,
        livemode=d.livemode,
        changes={
            "before": before,
            "after": {"status": d.status, "resolution": d.resolution},
            "note": note,
            "journal": journal,
            "difference": d.difference,
        },
    )


def _line_legs(d: Discrepancy, line: SettlementLine, connector, difference_account: str):
    """The line as the PSP settled it: its net into clearing; when it is one of our items, the
    receivable that item left (gross - the fee estimated at capture) out and the PSP's actual
    fee in place of the estimate (psp_fees); whatever remains (a different amount, a line we
    cannot attribute) to `difference_account`."""
    connector_id = connector.public_id
    receivable = fee_difference = 0
    ours = (
        line.expected_id is not None
        and line.state != LineState.DUPLICATE
        and line.expected_currency == line.currency  # another currency: nothing of ours here
    )
    if ours:
        # captures and reinstated disputes credit us; refunds and chargebacks debit us
        credit = line.expected_kind in ("capture", "reversal")
        signed = line.expected_amount if credit else -line.expected_amount
        receivable = signed - line.estimated_fee
        fee_difference = line.fee - line.estimated_fee
    legs = [
        (chart.settlement_clearing(connector_id), line.net),
        (chart.psp_receivable(connector_id), -receivable),
        (chart.PSP_FEES, fee_difference),
        (difference_account, receivable - line.net - fee_difference),
    ]
    merged: dict[str, int] = {}
    for account, amount in legs:
        merged[account] = merged.get(account, 0) + amount
    return [chart.Leg(a, v) for a, v in merged.items() if v]


@transaction.atomic
def discrepancy_accept_psp(*, discrepancy: Discrepancy, actor: Actor, user=None, note: str = ""):
    """Our books take the PSP's figure: the settled line is posted as the PSP reports it (its
    fee to psp_fees), any other difference to reconciliation write-offs."""
    _check(user, "accept_psp")
    d = _lock(discrepancy)
    _open_only(d)
    connector = connector_selectors.connectors_by_ids(ids=[d.connector_id])[0]
    journal = ""
    if d.line_id:
        line = SettlementLine.objects.get(pk=d.line_id)
        account = (
            chart.PSP_FEES
            if d.kind == DiscrepancyKind.FEE_MISMATCH
            else (chart.RECONCILIATION_WRITE_OFFS)
        )
        legs = _line_legs(d, line, connector, account)
        if legs:
            journal = _post(
                d, action="accept_psp", legs=legs, connector=connector, currency=line.currency
            )
    elif d.kind == DiscrepancyKind.PAYOUT_MISMATCH:
        # the bank received what the PSP paid; the batch's residue leaves clearing
        journal = _post(
            d,
            action="accept_psp",
            legs=postings.reconciliation_adjustment_legs(
                account=chart.RECONCILIATION_WRITE_OFFS,
                counter_account=chart.settlement_clearing(connector.public_id),
                amount=-d.difference,
            ),
            connector=connector,
            currency=d.currency,
        )
    else:
        raise InvalidRequestError(
            "A missing item has no PSP figure to accept: write it off or mark it expected.",
            code="discrepancy_nothing_to_accept",
        )
    return _resolve(
        d, resolution=Discrepancy.Resolution.ACCEPTED_PSP, actor=actor, note=note, journal=journal
    )


@transaction.atomic
def discrepancy_write_off(*, discrepancy: Discrepancy, actor: Actor, user=None, note: str = ""):
    """The difference is a loss (or gain) of the platform: posted to reconciliation write-offs.
    A missing item's receivable will never arrive; a line's difference leaves clearing."""
    _check(user, "write_off")
    d = _lock(discrepancy)
    _open_only(d)
    connector = connector_selectors.connectors_by_ids(ids=[d.connector_id])[0]
    connector_id = connector.public_id
    if d.kind == DiscrepancyKind.MISSING_IN_REPORT:
        # never settled: the receivable (net of the fee estimated at capture) will not arrive
        # and the PSP charged no fee; the whole amount is the loss
        credit = d.expected_kind in ("capture", "reversal")
        amount = d.our_amount if credit else -d.our_amount
        estimate = 0
        if d.expected_kind == "capture":
            estimate = ledger_selectors.capture_fee_estimate(source_id=d.expected_public_id)
        legs = [
            chart.Leg(chart.RECONCILIATION_WRITE_OFFS, amount),
            chart.Leg(chart.psp_receivable(connector_id), -(amount - estimate)),
            chart.Leg(chart.PSP_FEES, -estimate),
        ]
        legs = [leg for leg in legs if leg.amount]
        currency = d.currency
    elif d.line_id:
        line = SettlementLine.objects.get(pk=d.line_id)
        legs = _line_legs(d, line, connector, chart.RECONCILIATION_WRITE_OFFS)
        currency = line.currency
    else:  # payout mismatch
        legs = postings.reconciliation_adjustment_legs(
            account=chart.RECONCILIATION_WRITE_OFFS,
            counter_account=chart.settlement_clearing(connector_id),
            amount=-d.difference,
        )
        currency = d.currency
    journal = _post(d, action="write_off", legs=legs, connector=connector, currency=currency)
    return _resolve(
        d, resolution=Discrepancy.Resolution.WRITTEN_OFF, actor=actor, note=note, journal=journal
    )


@transaction.atomic
def discrepancy_link(
    *, discrepancy: Discrepancy, public_id: str, actor: Actor, user=None, note: str = ""
):
    """Links an unexpected line to one of our payments (pi_…) or refunds (re_…) by hand; the
    line is then posted as a match of that item (key `manual`)."""
    _check(user, "link")
    d = _lock(discrepancy)
    _open_only(d)
    if not d.line_id:
        raise InvalidRequestError(
            "Only a report line can be linked.", code="discrepancy_not_a_line"
        )
    found = intent_selectors.settlement_object_by_public_id(public_id=public_id.strip())
    if found is None:
        raise InvalidRequestError(
            f"No payment or refund {public_id!r}.", code="resource_missing", param="public_id"
        )
    kind, item = found
    connector = connector_selectors.connectors_by_ids(ids=[d.connector_id])[0]
    if item["merchant_id"] != connector.merchant_id:
        raise InvalidRequestError(
            "That item belongs to another merchant.", code="merchant_mismatch", param="public_id"
        )
    line = SettlementLine.objects.select_for_update().get(pk=d.line_id)
    line.expected_kind, line.expected_id = kind, item["id"]
    line.expected_public_id, line.expected_amount = item["public_id"], item["amount"]
    line.expected_currency, line.match_key = item["currency"], "manual"
    line.save(
        update_fields=[
            "expected_kind",
            "expected_id",
            "expected_public_id",
            "expected_amount",
            "expected_currency",
            "match_key",
        ]
    )
    legs = _line_legs(d, line, connector, chart.RECONCILIATION_WRITE_OFFS)
    journal = ""
    if legs:
        journal = _post(d, action="link", legs=legs, connector=connector, currency=line.currency)
    d.expected_kind, d.expected_id, d.expected_public_id = kind, item["id"], item["public_id"]
    d.our_amount, d.match_key = item["amount"], "manual"
    d.save(
        update_fields=[
            "expected_kind",
            "expected_id",
            "expected_public_id",
            "our_amount",
            "match_key",
        ]
    )
    return _resolve(
        d,
        resolution=Discrepancy.Resolution.LINKED,
        actor=actor,
        note=note or f"linked to {item['public_id']}",
        journal=journal,
    )


@transaction.atomic
def discrepancy_expect_later(*, discrepancy: Discrepancy, actor: Actor, user=None, note=""):
    """Not an exception yet (a late batch is announced): out of the open queue, no posting."""
    _check(user, "expected_later")
    d = _lock(discrepancy)
    _open_only(d)
    before = {"status": d.status, "resolution": d.resolution}
    d.status = D.EXPECTED_LATER
    d.resolution_note = note[:500]
    d.save(update_fields=["status", "resolution_note"])
    _audit(d, actor, "reconciliation.discrepancy.expected_later", before, note)
    return d


@transaction.atomic
def discrepancy_reopen(*, discrepancy: Discrepancy, actor: Actor, user=None, note: str = ""):
    """Back to the open queue; the resolution's journal, if any, is reversed."""
    _check(user, "reopen")
    d = _lock(discrepancy)
    if d.status == D.OPEN:
        raise ConflictError(f"Discrepancy {d.public_id} is open.", code="discrepancy_open")
    before = {"status": d.status, "resolution": d.resolution, "journal": d.journal}
    reversal = ""
    if d.journal:
        reversal = ledger.ledger_reverse(
            transaction=d.journal,
            idempotency_key=f"recon:{d.public_id}:reopen:{d.journal}",
            reason="discrepancy reopened",
            metadata={"discrepancy": d.public_id},
        ).public_id
    if d.line_id:
        line = SettlementLine.objects.get(pk=d.line_id)
        if line.match_key == "manual":  # a link undone: the line is unknown again
            SettlementLine.objects.filter(pk=d.line_id).update(
                state=LineState.UNEXPECTED,
                match_key="",
                expected_kind="",
                expected_id=None,
                expected_public_id="",
                expected_amount=None,
                expected_currency="",
            )
            d.expected_kind, d.expected_id, d.expected_public_id = "", None, ""
            d.our_amount, d.match_key = None, ""
        else:
            state = (
                LineState.DUPLICATE
                if d.kind == DiscrepancyKind.DUPLICATE
                else (LineState.MISMATCHED)
            )
            SettlementLine.objects.filter(pk=d.line_id).update(state=state)
    d.status, d.resolution, d.journal = D.OPEN, "", ""
    d.resolved_by, d.resolved_at = "", None
    d.reopen_count = (d.reopen_count or 0) + 1
    d.save(
        update_fields=[
            "status",
            "resolution",
            "journal",
            "resolved_by",
            "resolved_at",
            "reopen_count",
            "expected_kind",
            "expected_id",
            "expected_public_id",
            "our_amount",
            "match_key",
        ]
    )
    _audit(d, actor, "reconciliation.discrepancy.reopened", before, note, reversal)
    return d
