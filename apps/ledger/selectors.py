"""Ledger reads: balances, balance transactions, trial balance, drill-down by source object.
Merchant scoping happens here: every merchant-facing read takes the merchant id."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, Exists, F, IntegerField, OuterRef, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce

from apps.ledger import chart
from apps.ledger.models import DriftFinding, JournalTransaction, LedgerAccount, LedgerEntry

Kind = JournalTransaction.Kind
Phase = LedgerEntry.Phase

# The merchant's own balance: what a balance transaction's net moves.
MERCHANT_BALANCE_CODES = (chart.MERCHANT_PENDING, chart.MERCHANT_AVAILABLE)


@dataclass(frozen=True)
class Balance:
    currency: str
    available: int
    pending: int


def balances_for_merchant(*, merchant_id: int, livemode: bool) -> list[Balance]:
    """The merchant's available and pending balance per currency (Stripe's balance object)."""
    rows = (
        LedgerAccount.objects.filter(
            merchant_id=merchant_id, livemode=livemode, code__in=MERCHANT_BALANCE_CODES
        )
        .values("currency")
        .annotate(
            available=Coalesce(
                Sum(
                    F("posted_balance") - F("pending_debits"),
                    filter=Q(code=chart.MERCHANT_AVAILABLE),
                ),
                0,
            ),
            pending=Coalesce(Sum("posted_balance", filter=Q(code=chart.MERCHANT_PENDING)), 0),
        )
        .order_by("currency")
    )
    return [Balance(r["currency"], r["available"], r["pending"]) for r in rows]


def account_balance(*, merchant_id: int, livemode: bool, currency: str, code: str) -> int:
    """Posted balance (normal-balance terms) of one account; 0 if it was never opened."""
    account = LedgerAccount.objects.filter(
        merchant_id=merchant_id, livemode=livemode, currency=currency.lower(), code=code
    ).first()
    return account.posted_balance if account else 0


def hold_status(*, hold: JournalTransaction) -> str:
    """pending | posted | voided | expired, derived from the journal that resolves the hold."""
    resolution = JournalTransaction.objects.filter(resolves_id=hold.pk).values("kind").first()
    if resolution is None:
        return "pending"
    return {Kind.CAPTURE: "posted", Kind.VOID: "voided", Kind.EXPIRY: "expired"}[resolution["kind"]]


def pending_holds(*, merchant_id: int | None = None, expired_before: datetime | None = None):
    """Holds not resolved yet (optionally: only those expired before a time, for a sweep)."""
    holds = JournalTransaction.objects.filter(kind=Kind.AUTHORIZATION_HOLD).filter(
        ~Exists(JournalTransaction.objects.filter(resolves_id=OuterRef("pk")))
    )
    if merchant_id is not None:
        holds = holds.filter(merchant_id=merchant_id)
    if expired_before is not None:
        holds = holds.filter(expires_at__lte=expired_before)
    return holds.order_by("expires_at", "id")


def _signed_posted(codes: tuple[str, ...]) -> Sum:
    """On journals: the sum of their posted entries on `codes`, in normal-balance terms
    (credit-normal accounts flip the sign)."""
    return Sum(
        Case(
            When(entries__account__normal_balance=chart.DEBIT, then=F("entries__amount")),
            default=-F("entries__amount"),
            output_field=IntegerField(),
        ),
        filter=Q(entries__account__code__in=codes, entries__phase=Phase.POSTED),
    )


def balance_transactions(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str | None = None,
    kind: str | None = None,
    source_id: str | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
    include_zero_net: bool = False,
) -> QuerySet[JournalTransaction]:
    """Journals that move the merchant's own balance, newest first, annotated with
    `amount`, `fee` and `net`: net is what the merchant balance moved, fee what the platform
    charged in that journal (its platform_fee_revenue), amount = net + fee. Moves between
    pending and available have net 0 and are left out unless `include_zero_net`."""
    journals = (
        JournalTransaction.objects.filter(merchant_id=merchant_id, livemode=livemode)
        .filter(
            Exists(
                LedgerEntry.objects.filter(
                    transaction_id=OuterRef("pk"), account__code__in=MERCHANT_BALANCE_CODES
                )
            )
        )
        .annotate(
            net=Coalesce(_signed_posted(MERCHANT_BALANCE_CODES), Value(0)),
            fee=Coalesce(_signed_posted((chart.PLATFORM_FEE_REVENUE,)), Value(0)),
        )
        .annotate(amount=F("net") + F("fee"))
        .order_by("-id")
    )
    if not include_zero_net:
        journals = journals.exclude(net=0)
    if currency:
        journals = journals.filter(currency=currency.lower())
    if kind:
        journals = journals.filter(kind=kind)
    if source_id:
        journals = journals.filter(source_id=source_id)
    if created_gte:
        journals = journals.filter(created_at__gte=created_gte)
    if created_lt:
        journals = journals.filter(created_at__lt=created_lt)
    return journals


@dataclass(frozen=True)
class TrialBalanceLine:
    code_family: str  # "psp_receivable" for every "psp_receivable:<connector>"
    kind: str
    debit: int
    credit: int


@dataclass(frozen=True)
class TrialBalance:
    livemode: bool
    currency: str
    lines: list[TrialBalanceLine]
    total_debit: int
    total_credit: int
    pending_debits: int
    pending_credits: int

    @property
    def balanced(self) -> bool:
        return self.total_debit == self.total_credit and self.pending_debits == self.pending_credits


def trial_balance(
    *, livemode: bool | None = None, merchant_ids: set[int] | None = None
) -> list[TrialBalance]:
    """Per (mode, currency): every account family's balance in the debit or credit column.
    Over the whole ledger the columns are equal; `merchant_ids` scopes it (None: all)."""
    accounts = LedgerAccount.objects.all()
    if livemode is not None:
        accounts = accounts.filter(livemode=livemode)
    if merchant_ids is not None:
        accounts = accounts.filter(merchant_id__in=merchant_ids)
    totals: dict[tuple, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    pending: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    rows = accounts.values_list(
        "livemode",
        "currency",
        "code",
        "kind",
        "normal_balance",
        "posted_balance",
        "pending_debits",
        "pending_credits",
    )
    for mode, currency, code, kind, normal, balance, p_debits, p_credits in rows.iterator():
        signed = balance if normal == chart.DEBIT else -balance  # debit-positive
        totals[(mode, currency)][(code.partition(":")[0], kind)] += signed
        pending[(mode, currency)][0] += p_debits
        pending[(mode, currency)][1] += p_credits
    result = []
    for (mode, currency), families in sorted(totals.items()):
        lines = [
            TrialBalanceLine(family, kind, max(signed, 0), max(-signed, 0))
            for (family, kind), signed in sorted(families.items())
        ]
        result.append(
            TrialBalance(
                livemode=mode,
                currency=currency,
                lines=lines,
                total_debit=sum(line.debit for line in lines),
                total_credit=sum(line.credit for line in lines),
                pending_debits=pending[(mode, currency)][0],
                pending_credits=pending[(mode, currency)][1],
            )
        )
    return result


def journals_for_source(
    *, source_id: str, merchant_id: int | None = None
) -> QuerySet[JournalTransaction]:
    """Drill-down: every journal recorded for a business object (pi_…, re_…, po_…, dp_…),
    with its entries and accounts, oldest first."""
    journals = JournalTransaction.objects.filter(source_id=source_id)
    if merchant_id is not None:
        journals = journals.filter(merchant_id=merchant_id)
    return journals.prefetch_related("entries__account").order_by("id")


def entries_for_account(*, account: LedgerAccount) -> QuerySet[LedgerEntry]:
    """An account statement, oldest first."""
    return (
        LedgerEntry.objects.filter(account=account)
        .select_related("transaction")
        .order_by("account_version")
    )


def drift_findings(*, run_id: int) -> list[dict]:
    """A drift check's findings as plain rows (for the money audit): the journal's public id
    and the account's code name the offender."""
    return list(
        DriftFinding.objects.filter(run_id=run_id)
        .order_by("id")
        .values(
            "kind",
            "detail",
            "merchant_id",
            "currency",
            "expected",
            "actual",
            "account_id",
            "account__code",
            "transaction__public_id",
        )
    )


def capture_journal_figures() -> QuerySet:
    """Per capture journal's source (the payment intent's public id): the PSP fee estimated at
    capture and the merchant's pending credit. Reconciliation (issue 14) joins it to the report
    lines it matched, in SQL, to clear the receivable exactly and release pending funds."""
    return (
        LedgerEntry.objects.filter(
            transaction__kind=JournalTransaction.Kind.CAPTURE,
            phase=LedgerEntry.Phase.POSTED,
            account__code__in=(chart.PSP_FEES, chart.MERCHANT_PENDING),
        )
        # a capture the timer already released (before its connector had reports) is not
        # released again
        .exclude(
            Exists(JournalTransaction.objects.filter(settles_id=OuterRef("transaction_id")))
            & Q(account__code=chart.MERCHANT_PENDING)
        )
        .annotate(figure_source=F("transaction__source_id"))
        .values("figure_source")
        .annotate(
            fee_estimate=Coalesce(
                Sum(Case(When(account__code=chart.PSP_FEES, then=F("amount")))), Value(0)
            ),
            pending_credit=Coalesce(
                Sum(Case(When(account__code=chart.MERCHANT_PENDING, then=-F("amount")))),
                Value(0),
            ),
        )
        .values("figure_source", "fee_estimate", "pending_credit")
    )


def capture_fee_estimate(*, source_id: str) -> int:
    """The PSP fee estimated when this payment was captured (0 if none was booked)."""
    total = LedgerEntry.objects.filter(
        transaction__kind=JournalTransaction.Kind.CAPTURE,
        transaction__source_id=source_id,
        phase=LedgerEntry.Phase.POSTED,
        account__code=chart.PSP_FEES,
    ).aggregate(total=Sum("amount"))["total"]
    return int(total or 0)
