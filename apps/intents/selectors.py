from __future__ import annotations

import re

from django.db.models import Count, F, Prefetch, Q, Sum
from django.db.models.functions import Coalesce

from apps.core.errors import NotFoundError
from apps.intents.models import PaymentAttempt, PaymentIntent, Refund, RefundStatus


def intent_list(
    *,
    merchant_id: int,
    livemode: bool,
    status: str | None = None,
    order_id: str | None = None,
    created_gte=None,
    created_lte=None,
    with_attempts: bool = False,
):
    """`with_attempts`: each intent's attempts (with their connectors) loaded along, in one
    query per page instead of one per intent, for `expand[]=attempts`."""
    queryset = PaymentIntent.objects.filter(merchant_id=merchant_id, livemode=livemode)
    if with_attempts:
        queryset = queryset.prefetch_related(
            Prefetch(
                "attempts",
                queryset=PaymentAttempt.objects.select_related("connector").order_by("sequence"),
            )
        )
    if status:
        queryset = queryset.filter(status=status)
    if order_id:
        queryset = queryset.filter(order_id=order_id)
    if created_gte is not None:
        queryset = queryset.filter(created_at__gte=created_gte)
    if created_lte is not None:
        queryset = queryset.filter(created_at__lte=created_lte)
    return queryset.select_related("payment_method", "connector")


_INTENT_ID = re.compile(r"^pi_[A-Za-z0-9]{1,60}\Z")


def intent_get_for_return(*, public_id: str) -> PaymentIntent:
    """For the shopper's return from a redirect: no API key, the intent's unguessable id is
    the only credential (as in the return URL the PSP was given). Anything that is not an
    intent id's shape (a browser may send any bytes) is not found, without a query."""
    if not _INTENT_ID.match(public_id or ""):
        raise NotFoundError("No such payment_intent.", param="id")
    try:
        return PaymentIntent.objects.select_related("payment_method", "connector").get(
            public_id=public_id
        )
    except PaymentIntent.DoesNotExist:
        raise NotFoundError(f"No such payment_intent: {public_id!r}.", param="id") from None


def intent_get(
    *, merchant_id: int, livemode: bool, public_id: str, param: str = "id"
) -> PaymentIntent:
    try:
        return PaymentIntent.objects.select_related("payment_method", "connector").get(
            merchant_id=merchant_id, livemode=livemode, public_id=public_id
        )
    except PaymentIntent.DoesNotExist:
        raise NotFoundError(f"No such payment_intent: {public_id!r}.", param=param) from None


def refund_list(*, merchant_id: int, livemode: bool, payment_intent: str | None = None):
    queryset = Refund.objects.filter(merchant_id=merchant_id, livemode=livemode)
    if payment_intent:
        queryset = queryset.filter(intent__public_id=payment_intent)
    return queryset.select_related("intent")


def refund_get(*, merchant_id: int, livemode: bool, public_id: str) -> Refund:
    try:
        return refund_list(merchant_id=merchant_id, livemode=livemode).get(public_id=public_id)
    except Refund.DoesNotExist:
        raise NotFoundError(f"No such refund: {public_id!r}.", param="id") from None


def attempts_for_review():
    return PaymentAttempt.objects.filter(outcome=PaymentAttempt.Outcome.UNKNOWN)


def intent_search(queryset, term: str):
    """Support's one search box over `queryset` (already scoped to the staff member's
    merchants), as a few index lookups: the admin's default ORs a case-insensitive match over
    every field and join, which reads every payment. Ids and references match exactly (they
    are case-sensitive; a Stripe reference looks like one of our ids, so both are tried),
    emails ignoring case, four digits are a card's last4. Any other term of three characters
    or more is also looked for inside the customer's email and the cardholder's name
    ("jane", "@example.com", "Jane Do", "shopper1"), on trigram indexes (observability
    migration 0003), unless it has the shape of one of our public ids."""
    term = term.strip()
    if _FULL_EMAIL.fullmatch(term):
        return queryset.filter(customer_email__iexact=term)
    if len(term) == 4 and term.isdigit():
        return queryset.filter(payment_method__last4=term)
    if len(term) < 3 or _PUBLIC_ID.fullmatch(term):
        return queryset.filter(pk__in=list(_ids_matching(term)))
    partial = queryset.filter(
        Q(customer_email__icontains=term) | Q(payment_method__billing_name__icontains=term)
    )
    if "@" in term or " " in term:
        return partial  # no id has either
    return partial | queryset.filter(pk__in=list(_ids_matching(term)))


_FULL_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# our public ids (pi_…, pa_…, re_…, pm_…): exact lookups only
_PUBLIC_ID = re.compile(r"[a-z]{2,5}_[A-Za-z0-9]{12,}")


def _ids_matching(term: str):
    intents = PaymentIntent.objects.values_list("pk", flat=True)
    attempts = PaymentAttempt.objects.values_list("intent_id", flat=True)
    return (
        intents.filter(public_id=term)
        .union(
            intents.filter(order_id=term),
            intents.filter(psp_reference=term),
            intents.filter(payment_method__public_id=term),
            attempts.filter(public_id=term),
            attempts.filter(psp_reference=term),
            Refund.objects.filter(public_id=term).values_list("intent_id", flat=True),
        )
        .order_by()[:1000]
    )


# --------------------------------------------------------------------------- money audit
# Plain rows for `apps.money_audit` (no model instances cross the app boundary).


def audit_counts() -> dict[str, dict[str, int]]:
    """Intents by status, attempts by outcome, refunds by status."""

    def by(queryset, field: str) -> dict[str, int]:
        rows = queryset.values_list(field).annotate(n=Count("id")).order_by(field)
        return {value: n for value, n in rows}

    return {
        "intents": by(PaymentIntent.objects.all(), "status"),
        "attempts": by(PaymentAttempt.objects.all(), "outcome"),
        "refunds": by(Refund.objects.all(), "status"),
    }


def audit_intents_processing(*, updated_before) -> list[dict]:
    """Intents still `processing` and untouched since `updated_before`, oldest first."""
    return list(
        PaymentIntent.objects.filter(status="processing", updated_at__lt=updated_before)
        .order_by("updated_at")
        .values("public_id", "pending_operation", "needs_review", "updated_at")
    )


def audit_attempts_unresolved(*, started_before) -> list[dict]:
    """Attempts whose outcome is still unknown (or never recorded: `pending`) since before
    `started_before`, on intents nobody flagged for review."""
    return list(
        PaymentAttempt.objects.filter(
            outcome__in=[PaymentAttempt.Outcome.UNKNOWN, PaymentAttempt.Outcome.PENDING],
            started_at__lt=started_before,
            intent__needs_review=False,
        )
        .order_by("started_at")
        .values("public_id", "outcome", "started_at", "intent__public_id")
    )


def audit_refunds_unresolved(*, created_before) -> list[dict]:
    return list(
        Refund.objects.filter(status=RefundStatus.PENDING, created_at__lt=created_before)
        .order_by("created_at")
        .values("public_id", "created_at", "intent__public_id")
    )


def audit_refund_reservations_mismatched() -> list[dict]:
    """Intents whose `amount_refunded` (the reservation) is not the sum of their pending and
    succeeded refunds, or exceeds what was received."""
    reserved = Coalesce(
        Sum(
            "refunds__amount",
            filter=Q(refunds__status__in=[RefundStatus.PENDING, RefundStatus.SUCCEEDED]),
        ),
        0,
    )
    return list(
        PaymentIntent.objects.filter(Q(amount_received__gt=0) | Q(amount_refunded__gt=0))
        .annotate(reserved=reserved)
        .filter(Q(amount_refunded__gt=F("amount_received")) | ~Q(amount_refunded=F("reserved")))
        .order_by("id")
        .values("public_id", "amount_received", "amount_refunded", "reserved")
    )


def audit_payment_records():
    """Every intent that reached a PSP (it has attempts), with its attempts and refunds, for
    comparison with the PSP's own record. Yields dicts, in id order, without loading every
    model instance at once."""
    intents = PaymentIntent.objects.filter(attempts__isnull=False).distinct()
    attempts: dict[int, list[dict]] = {}
    for row in (
        PaymentAttempt.objects.filter(intent_id__in=intents.values("id"))
        .order_by("intent_id", "sequence")
        .values("intent_id", "public_id", "outcome", "psp_reference", "connector_id", "amount")
        .iterator(chunk_size=5000)
    ):
        attempts.setdefault(row.pop("intent_id"), []).append(row)
    refunds: dict[int, list[dict]] = {}
    for row in (
        Refund.objects.filter(intent_id__in=intents.values("id"))
        .order_by("id")
        .values("intent_id", "public_id", "amount", "status", "psp_reference")
        .iterator(chunk_size=5000)
    ):
        refunds.setdefault(row.pop("intent_id"), []).append(row)
    for row in (
        PaymentIntent.objects.filter(id__in=intents.values("id"))
        .order_by("id")
        .values(
            "id",
            "public_id",
            "status",
            "capture_method",
            "amount",
            "amount_capturable",
            "amount_received",
            "amount_refunded",
            "connector_id",
            "psp_reference",
            "pending_operation",
            "needs_review",
        )
        .iterator(chunk_size=5000)
    ):
        pk = row.pop("id")
        row["attempts"] = attempts.get(pk, [])
        row["refunds"] = refunds.get(pk, [])
        yield row


def intent_risk_history(*, merchant_id: int, livemode: bool, since) -> list[dict]:
    """Radar's rule test: each confirmed payment since `since` with the signals its outcome
    stored, its customer's email and metadata (newest first, at most 50,000)."""
    rows = (
        PaymentIntent.objects.filter(
            merchant_id=merchant_id,
            livemode=livemode,
            created_at__gte=since,
            risk_outcome__isnull=False,
        )
        .order_by("-id")
        .values("public_id", "risk_outcome", "customer_email", "metadata")[:50000]
    )
    return list(rows)


def settlement_expectations(*, connector_ids: list[int], since):
    """What we expect a PSP to settle (issue 14, reconciliation): each captured payment (by its
    approved attempt) and each succeeded refund of these connectors since `since`, in one shape:
    kind, object_id, public_id, psp_reference, modification_reference, merchant_reference,
    amount, currency, merchant_id, livemode, connector_id, occurred_at. A values queryset the
    reconciliation compiles into its set-based matching SQL (never iterated row by row)."""
    from django.db.models import CharField, DateTimeField, Value

    text = CharField()
    captures = (
        PaymentAttempt.objects.filter(
            connector_id__in=connector_ids,
            outcome=PaymentAttempt.Outcome.APPROVED,
            intent__amount_received__gt=0,
            intent__psp_reference=F("psp_reference"),
            intent__created_at__gte=since,
        )
        .annotate(
            x_kind=Value("capture", output_field=text),
            x_object_id=F("intent_id"),
            x_public_id=F("intent__public_id"),
            x_psp_reference=F("psp_reference"),
            x_modification_reference=Value("", output_field=text),
            x_merchant_reference=F("public_id"),
            x_amount=F("intent__amount_received"),
            x_currency=F("intent__currency"),
            x_merchant_id=F("intent__merchant_id"),
            x_livemode=F("intent__livemode"),
            x_connector_id=F("connector_id"),
            x_occurred_at=Coalesce(
                "intent__authorized_at", "started_at", output_field=DateTimeField()
            ),
        )
        .values(*_EXPECTATION_FIELDS)
    )
    refunds = (
        Refund.objects.filter(
            connector_id__in=connector_ids,
            # pending: the PSP accepted it and its outcome arrives by webhook (Adyen)
            status__in=(RefundStatus.PENDING, RefundStatus.SUCCEEDED),
            created_at__gte=since,
        )
        .annotate(
            x_kind=Value("refund", output_field=text),
            x_object_id=F("id"),
            x_public_id=F("public_id"),
            x_psp_reference=F("intent__psp_reference"),
            x_modification_reference=F("psp_reference"),
            x_merchant_reference=F("public_id"),
            x_amount=F("amount"),
            x_currency=F("currency"),
            x_merchant_id=F("merchant_id"),
            x_livemode=F("livemode"),
            x_connector_id=F("connector_id"),
            x_occurred_at=F("created_at"),
        )
        .values(*_EXPECTATION_FIELDS)
    )
    return captures.union(refunds, all=True)


_EXPECTATION_FIELDS = (
    "x_kind",
    "x_object_id",
    "x_public_id",
    "x_psp_reference",
    "x_modification_reference",
    "x_merchant_reference",
    "x_amount",
    "x_currency",
    "x_merchant_id",
    "x_livemode",
    "x_connector_id",
    "x_occurred_at",
)


def settlement_objects(*, kind: str, object_ids: list[int]) -> dict[int, dict]:
    """Our side of a reconciliation discrepancy, for the finance screens (issue 14)."""
    if kind == "capture":
        rows = PaymentIntent.objects.filter(id__in=object_ids).values(
            "id",
            "public_id",
            "amount",
            "amount_received",
            "amount_refunded",
            "currency",
            "status",
            "psp_reference",
            "merchant_id",
            "created_at",
        )
    else:
        rows = Refund.objects.filter(id__in=object_ids).values(
            "id",
            "public_id",
            "amount",
            "currency",
            "status",
            "psp_reference",
            "merchant_id",
            "created_at",
        )
    return {row["id"]: row for row in rows}


def settlement_object_by_public_id(*, public_id: str) -> tuple[str, dict] | None:
    """A capture (pi_…) or refund (re_…) by public id: what finance links a line to by hand."""
    intent = (
        PaymentIntent.objects.filter(public_id=public_id)
        .values("id", "public_id", "amount_received", "currency", "merchant_id", "livemode")
        .first()
    )
    if intent:
        return "capture", {**intent, "amount": intent["amount_received"]}
    refund = (
        Refund.objects.filter(public_id=public_id)
        .values("id", "public_id", "amount", "currency", "merchant_id", "livemode")
        .first()
    )
    return ("refund", refund) if refund else None


def attempt_for_psp_reference(*, connector_id: int, psp_reference: str) -> PaymentAttempt | None:
    """The successful attempt a PSP's payment reference names on one connector (a dispute
    notification names the payment only by it), with its intent."""
    if not psp_reference:
        return None
    return (
        PaymentAttempt.objects.select_related("intent")
        .filter(connector_id=connector_id, psp_reference=psp_reference)
        .order_by("-id")
        .first()
    )


def intent_captured_totals(*, since, merchant_id: int | None = None):
    """Captured payments since a moment, per (merchant, connector): count and amount (the
    denominator of the dispute rate)."""
    intents = PaymentIntent.objects.filter(amount_received__gt=0, created_at__gte=since)
    if merchant_id is not None:
        intents = intents.filter(merchant_id=merchant_id)
    return intents.values("merchant_id", "connector_id", "currency").annotate(
        count=Count("id"), amount=Sum("amount_received")
    )
