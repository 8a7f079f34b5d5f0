"""Business events -> journal legs, for the checkout and settlement planes. Pure functions on
primitives (ints, strings); they write nothing. The caller passes the legs to a service:

    hold = ledger_hold(..., legs=authorization_legs(amount=5000), expires_at=...)
    ledger_capture_hold(hold=hold, amount=4000, legs=capture_legs(connector="conn_…",
                        amount=4000, psp_fee=146), idempotency_key=f"{attempt_id}:capture", ...)
    ledger_void_hold(hold=hold, ...)            # release, nothing posted
    ledger_post(kind="refund", legs=refund_legs(...), ...)
    ledger_post(kind="payout", legs=payout_legs(...)); later ledger_post(kind="payout_paid",
    legs=payout_paid_legs(...)) or ledger_reverse(transaction=payout, kind="payout_failure", ...)

Who pays what (the platform's books, per merchant):
- capture: the PSP will settle `amount - psp_fee` (receivable); its fee is our expense
  (psp_fees); we charge the merchant `psp_fee + platform_fee` (platform_fee_revenue); sellers get
  their splits; the merchant is owed the rest (merchant_pending).
- refunds: the PSP takes the refund from the receivable; fees are not returned; sellers give
  back their share proportionally, the merchant the remainder (see `split_refund_shares`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from apps.core.errors import InvalidRequestError
from apps.ledger import chart
from apps.ledger.chart import Leg


@dataclass(frozen=True)
class Split:
    """A marketplace seller's share of a capture, in minor units."""

    seller_id: str
    amount: int


def _non_negative(value: int, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(
            f"{param} must be a non-negative integer.", code="amount_invalid", param=param
        )
    return value


def _positive(value: int, param: str) -> int:
    if _non_negative(value, param) == 0:
        raise InvalidRequestError(f"{param} must not be zero.", code="amount_zero", param=param)
    return value


def _legs(*pairs: tuple[str, int]) -> list[Leg]:
    """Drops zero legs (an optional fee of 0) and merges repeated accounts."""
    merged: dict[str, int] = {}
    for account, amount in pairs:
        merged[account] = merged.get(account, 0) + amount
    return [Leg(account, amount) for account, amount in merged.items() if amount != 0]


def authorization_legs(*, amount: int) -> list[Leg]:
    """A card authorization as a hold (ledger_hold): pending on the memo pair, no posted money."""
    _positive(amount, "amount")
    return [Leg.debit(chart.AUTHORIZED_HOLDS, amount), Leg.credit(chart.AUTHORIZATIONS, amount)]


def capture_legs(
    *,
    connector: str,
    amount: int,
    psp_fee: int = 0,
    platform_fee: int = 0,
    splits: Sequence[Split] = (),
    surcharge: int = 0,
) -> list[Leg]:
    """A capture (with ledger_capture_hold, or ledger_post(kind="capture") when there was no
    separate authorization). `psp_fee` is the PSP's estimated fee; `platform_fee` our markup or
    the marketplace's application fee; `surcharge` the part of `amount` the shopper paid as a
    surcharge, credited to the merchant's surcharge revenue."""
    _positive(amount, "amount")
    _non_negative(psp_fee, "psp_fee")
    _non_negative(platform_fee, "platform_fee")
    _non_negative(surcharge, "surcharge")
    for split in splits:
        _positive(split.amount, "splits.amount")
    merchant_share = amount - psp_fee - platform_fee - sum(s.amount for s in splits) - surcharge
    if merchant_share < 0:
        raise InvalidRequestError(
            "Fees and splits exceed the captured amount.", code="splits_exceed_amount"
        )
    return _legs(
        (chart.psp_receivable(connector), amount - psp_fee),
        (chart.PSP_FEES, psp_fee),
        (chart.PLATFORM_FEE_REVENUE, -(psp_fee + platform_fee)),
        *((chart.seller_pending(s.seller_id), -s.amount) for s in splits),
        (chart.MERCHANT_SURCHARGE, -surcharge),
        (chart.MERCHANT_PENDING, -merchant_share),
    )


def split_refund_shares(
    *, amount: int, captured_amount: int, previously_refunded: int, splits: Sequence[Split]
) -> dict[str, int]:
    """How much of a refund each seller gives back; the merchant covers the rest.

    Rounding rule: a seller's *cumulative* take-back is
    floor(total_refunded * split / captured_amount), so no seller ever gives back more than its
    proportional share, and refunds that add up to the capture take back exactly each split.
    Should the sellers' increments in one refund exceed it (a refund of a few minor units after
    earlier floors), they are trimmed, largest first, so the refund's legs still total exactly
    the refund and no leg turns into a credit."""
    shares: dict[str, int] = {}
    for split in splits:
        before = previously_refunded * split.amount // captured_amount
        after = (previously_refunded + amount) * split.amount // captured_amount
        shares[split.seller_id] = shares.get(split.seller_id, 0) + after - before
    excess = sum(shares.values()) - amount
    for seller in sorted(shares, key=lambda s: (-shares[s], s)):
        if excess <= 0:
            break
        cut = min(excess, shares[seller])
        shares[seller] -= cut
        excess -= cut
    return shares


def refund_legs(
    *,
    connector: str,
    amount: int,
    captured_amount: int | None = None,
    previously_refunded: int = 0,
    splits: Sequence[Split] = (),
    surcharge: int = 0,
) -> list[Leg]:
    """A refund: recovered from the merchant's (and sellers') pending funds, paid out of the
    PSP receivable. With splits or a surcharge, pass the captured amount and what was refunded
    before: the surcharge comes back in proportion (cumulatively floored, as sellers' shares,
    so refunds adding up to the capture return exactly all of it)."""
    _positive(amount, "amount")
    _non_negative(previously_refunded, "previously_refunded")
    _non_negative(surcharge, "surcharge")
    shares: dict[str, int] = {}
    surcharge_back = 0
    if surcharge and captured_amount:
        surcharge_back = (previously_refunded + amount) * surcharge // captured_amount - (
            previously_refunded * surcharge // captured_amount
        )
    if splits and captured_amount is None:
        raise InvalidRequestError(
            "captured_amount is needed to share a refund among sellers.",
            code="parameter_missing",
            param="captured_amount",
        )
    if captured_amount is not None:
        _positive(captured_amount, "captured_amount")
        if previously_refunded + amount > captured_amount:
            raise InvalidRequestError(
                "Refunds cannot exceed the captured amount.",
                code="refund_exceeds_capture",
                param="amount",
            )
        shares = split_refund_shares(
            amount=amount,
            captured_amount=captured_amount,
            previously_refunded=previously_refunded,
            splits=splits,
        )
    return _legs(
        (chart.MERCHANT_PENDING, amount - sum(shares.values()) - surcharge_back),
        (chart.MERCHANT_SURCHARGE, surcharge_back),
        *((chart.seller_pending(seller), share) for seller, share in shares.items()),
        (chart.psp_receivable(connector), -amount),
    )


def chargeback_legs(
    *, connector: str, amount: int, dispute_fee: int = 0, merchant_liable: bool = True
) -> list[Leg]:
    """A chargeback: the PSP withdraws the disputed amount and its dispute fee from the
    receivable; the merchant bears both, or the platform does (dispute_losses) when it absorbs
    the loss."""
    _positive(amount, "amount")
    _non_negative(dispute_fee, "dispute_fee")
    bearer = chart.MERCHANT_PENDING if merchant_liable else chart.DISPUTE_LOSSES
    return _legs(
        (bearer, amount + dispute_fee), (chart.psp_receivable(connector), -(amount + dispute_fee))
    )


def chargeback_reversal_legs(
    *, connector: str, amount: int, merchant_liable: bool = True
) -> list[Leg]:
    """A won dispute: the PSP returns the disputed amount (not its fee) to whoever bore it."""
    _positive(amount, "amount")
    bearer = chart.MERCHANT_PENDING if merchant_liable else chart.DISPUTE_LOSSES
    return _legs((chart.psp_receivable(connector), amount), (bearer, -amount))


def funds_release_legs(*, amount: int, seller_id: str | None = None) -> list[Leg]:
    """Settlement delay over: pending -> available (merchant, or one seller)."""
    _positive(amount, "amount")
    pending = chart.MERCHANT_PENDING if seller_id is None else chart.seller_pending(seller_id)
    return [Leg.debit(pending, amount), Leg.credit(chart.available_for(pending), amount)]


def settlement_legs(*, connector: str, amount: int) -> list[Leg]:
    """A PSP settlement (from its settlement file): the receivable arrives in the bank."""
    _positive(amount, "amount")
    return [Leg.debit(chart.BANK, amount), Leg.credit(chart.psp_receivable(connector), amount)]


def settlement_batch_legs(
    *, connector: str, net: int, receivable: int, fee_difference: int
) -> list[Leg]:
    """Matched lines of a PSP settlement report (issue 14), summed per merchant and currency:
    what the PSP settled (`net`, signed) goes to the connector's settlement clearing, the
    receivable the captures and refunds left (`receivable` = gross - the fees estimated at
    capture) is cleared, and the fees the report charged replace our estimate
    (`fee_difference` = actual - estimated, an expense when positive). Sums to zero:
    net = receivable - fee_difference."""
    if net != receivable - fee_difference:
        raise InvalidRequestError(
            "net must equal receivable - fee_difference.", code="settlement_unbalanced"
        )
    return _legs(
        (chart.settlement_clearing(connector), net),
        (chart.PSP_FEES, fee_difference),
        (chart.psp_receivable(connector), -receivable),
    )


def settlement_payout_legs(*, connector: str, amount: int) -> list[Leg]:
    """A settlement batch's payout (issue 14): clearing -> bank (signed: a negative batch is a
    debit the PSP took from the bank)."""
    if amount == 0:
        raise InvalidRequestError("amount must not be zero.", code="amount_zero", param="amount")
    return [Leg(chart.BANK, amount), Leg(chart.settlement_clearing(connector), -amount)]


def reconciliation_adjustment_legs(*, account: str, counter_account: str, amount: int) -> list[Leg]:
    """A finance resolution (issue 14): `amount` (signed) debited to `account`, credited to
    `counter_account`."""
    if amount == 0:
        raise InvalidRequestError("amount must not be zero.", code="amount_zero", param="amount")
    return [Leg(account, amount), Leg(counter_account, -amount)]


def payout_legs(*, amount: int, seller_id: str | None = None) -> list[Leg]:
    """A payout leaves the available balance (which may not go negative) and is in transit.
    Its failure is `ledger_reverse(transaction=payout, kind="payout_failure")`."""
    _positive(amount, "amount")
    source = chart.MERCHANT_AVAILABLE if seller_id is None else chart.seller_available(seller_id)
    return [Leg.debit(source, amount), Leg.credit(chart.PAYOUTS_IN_TRANSIT, amount)]


def payout_paid_legs(*, amount: int) -> list[Leg]:
    """The bank confirms the payout: in transit -> out of the bank."""
    _positive(amount, "amount")
    return [Leg.debit(chart.PAYOUTS_IN_TRANSIT, amount), Leg.credit(chart.BANK, amount)]


def transfer_legs(*, amount: int, from_account: str, to_account: str) -> list[Leg]:
    """Moves money owed from one liability to another (merchant <-> seller available)."""
    _positive(amount, "amount")
    return [Leg.debit(from_account, amount), Leg.credit(to_account, amount)]


def dispute_withdrawal_legs(
    *,
    connector: str,
    taken: int,
    uncovered: int = 0,
    dispute_fee: int = 0,
    captured_amount: int | None = None,
    taken_before: int = 0,
    splits: Sequence[Split] = (),
) -> list[Leg]:
    """The PSP withdraws a disputed amount and its dispute fee from the receivable. The
    merchant (and, for a split payment, each seller in proportion, as for refunds) bears
    `taken`, what the payment still held; `uncovered` (the PSP took more than that, e.g. after
    a refund) is the platform's dispute loss until recovered; the merchant pays the fee."""
    _non_negative(taken, "taken")
    _non_negative(uncovered, "uncovered")
    _non_negative(dispute_fee, "dispute_fee")
    if taken + uncovered + dispute_fee == 0:
        raise InvalidRequestError("Nothing to post.", code="amount_zero", param="amount")
    shares: dict[str, int] = {}
    if splits and taken:
        if captured_amount is None:
            raise InvalidRequestError(
                "captured_amount is needed to share a dispute among sellers.",
                code="parameter_missing",
                param="captured_amount",
            )
        shares = split_refund_shares(
            amount=taken,
            captured_amount=captured_amount,
            previously_refunded=taken_before,
            splits=splits,
        )
    return _legs(
        (chart.MERCHANT_PENDING, taken - sum(shares.values()) + dispute_fee),
        *((chart.seller_pending(seller), share) for seller, share in shares.items()),
        (chart.DISPUTE_LOSSES, uncovered),
        (chart.psp_receivable(connector), -(taken + uncovered + dispute_fee)),
    )


def dispute_reinstatement_legs(
    *,
    connector: str,
    taken: int,
    uncovered: int = 0,
    captured_amount: int | None = None,
    taken_before: int = 0,
    splits: Sequence[Split] = (),
) -> list[Leg]:
    """A won dispute: the PSP returns the disputed amount (not its fee), back to whoever bore
    it (the exact negation of the withdrawal's amount legs)."""
    return [
        Leg(leg.account, -leg.amount)
        for leg in dispute_withdrawal_legs(
            connector=connector,
            taken=taken,
            uncovered=uncovered,
            captured_amount=captured_amount,
            taken_before=taken_before,
            splits=splits,
        )
    ]


def dispute_fee_return_legs(*, connector: str, dispute_fee: int) -> list[Leg]:
    """The PSP gives the dispute fee back (some do on a won dispute): the fee legs, negated."""
    return [
        Leg(leg.account, -leg.amount)
        for leg in dispute_withdrawal_legs(connector=connector, taken=0, dispute_fee=dispute_fee)
    ]
