"""Chart of accounts and the leg type: pure Python, no database.

Sign convention
---------------
- `LedgerEntry.amount` is signed debit-positive: a debit is `+n`, a credit is `-n`. The entries of a
  journal sum to zero per currency and per phase (posted, hold, release).
- `LedgerAccount.posted_balance` is kept in the account's *normal-balance* terms: for debit-normal
  accounts (assets, expenses) it is `sum(amount)`, for credit-normal accounts (liabilities,
  revenue) it is `-sum(amount)`. What the platform owes a merchant (`merchant_available`, a
  liability) is therefore a non-negative number, and `allow_negative OR posted_balance >= 0` reads
  the way finance reads it.
- So per currency, `sum(sign * posted_balance) == 0` over all accounts, with `sign = +1` for
  debit-normal and `-1` for credit-normal accounts (the trial balance).
- Holds move `pending_debits` / `pending_credits` (both >= 0, in absolute minor units) and never the
  posted balance. A non-negative account must also stay non-negative after its pending holds:
  credit-normal `posted_balance - pending_debits >= 0`, debit-normal
  `posted_balance - pending_credits >= 0`.

The ledger is the platform's books, partitioned by merchant: every account belongs to one
(merchant_id, livemode, currency). Merchant and seller accounts are liabilities (what we owe them).
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.errors import InvalidRequestError

ASSET, LIABILITY, REVENUE, EXPENSE = "asset", "liability", "revenue", "expense"
DEBIT, CREDIT = "debit", "credit"
NORMAL_BALANCE = {ASSET: DEBIT, EXPENSE: DEBIT, LIABILITY: CREDIT, REVENUE: CREDIT}

MAX_CODE_LENGTH = 120

MERCHANT_PENDING = "merchant_pending"
MERCHANT_AVAILABLE = "merchant_available"
SELLER_PENDING = "seller_pending"
SELLER_AVAILABLE = "seller_available"
PSP_RECEIVABLE = "psp_receivable"
PSP_FEES = "psp_fees"
PLATFORM_FEE_REVENUE = "platform_fee_revenue"
DISPUTE_LOSSES = "dispute_losses"
PAYOUTS_IN_TRANSIT = "payouts_in_transit"
BANK = "bank"
AUTHORIZED_HOLDS = "authorized_holds"
AUTHORIZATIONS = "authorizations"
# surcharges the merchant charged its shoppers (apps/risk surcharge rules): the merchant's
# surcharge revenue, owed to it like its pending funds and released to available with them
MERCHANT_SURCHARGE = "merchant_surcharge"
SETTLEMENT_CLEARING = "settlement_clearing"  # issue 14: settled by the PSP, payout not yet in
RECONCILIATION_WRITE_OFFS = "reconciliation_write_offs"  # issue 14: differences written off


@dataclass(frozen=True)
class AccountType:
    kind: str
    allow_negative: bool
    parametrized: bool  # the code carries an id: "psp_receivable:<connector>"
    description: str

    @property
    def normal_balance(self) -> str:
        return NORMAL_BALANCE[self.kind]


CHART: dict[str, AccountType] = {
    # Refunds and disputes are recovered from pending funds, which may go negative and then net
    # against the next captures before anything becomes available.
    MERCHANT_PENDING: AccountType(LIABILITY, True, False, "Owed to the merchant, not yet settled"),
    MERCHANT_AVAILABLE: AccountType(LIABILITY, False, False, "Owed to the merchant, payable"),
    SELLER_PENDING: AccountType(LIABILITY, True, True, "Owed to a seller, not yet settled"),
    SELLER_AVAILABLE: AccountType(LIABILITY, False, True, "Owed to a seller, payable"),
    # Refunds can exceed what a PSP still owes us for a period, so receivables may go negative.
    PSP_RECEIVABLE: AccountType(ASSET, True, True, "Captured funds the PSP will settle"),
    PSP_FEES: AccountType(EXPENSE, True, False, "Processing fees the PSPs charge"),
    PLATFORM_FEE_REVENUE: AccountType(REVENUE, True, False, "Fees charged to the merchant"),
    DISPUTE_LOSSES: AccountType(EXPENSE, True, False, "Chargebacks the platform absorbs"),
    PAYOUTS_IN_TRANSIT: AccountType(LIABILITY, False, False, "Payouts sent, not yet confirmed"),
    # Pooled: a merchant's sub-ledger bank line can dip below zero between settlement and payout.
    BANK: AccountType(ASSET, True, False, "Platform bank account"),
    # Memo pair for card authorizations: holds only, never posted.
    AUTHORIZED_HOLDS: AccountType(ASSET, False, False, "Authorized, not captured (card side)"),
    AUTHORIZATIONS: AccountType(LIABILITY, False, False, "Authorized, not captured (merchant)"),
    MERCHANT_SURCHARGE: AccountType(
        LIABILITY, True, False, "Surcharge revenue owed to the merchant, not yet settled"
    ),
    # Reconciliation (issue 14): what a PSP's settlement report says it settled, per connector,
    # until the batch's payout reaches the bank; a payout short of its lines leaves a residue.
    SETTLEMENT_CLEARING: AccountType(ASSET, True, True, "Settled by the PSP, not yet in the bank"),
    RECONCILIATION_WRITE_OFFS: AccountType(
        EXPENSE, True, False, "Reconciliation differences written off"
    ),
}


def account_type(code: str) -> AccountType:
    """The chart entry for an account code; refuses codes the chart does not know."""
    if not isinstance(code, str) or not code or len(code) > MAX_CODE_LENGTH:
        raise InvalidRequestError(
            f"Account code must be a string of at most {MAX_CODE_LENGTH} characters.",
            code="account_code_invalid",
            param="account",
        )
    family, sep, suffix = code.partition(":")
    entry = CHART.get(family)
    if entry is None:
        raise InvalidRequestError(
            f"Unknown ledger account code {code!r}.", code="account_code_invalid", param="account"
        )
    valid_suffix = bool(suffix) and suffix.isprintable() and not any(c.isspace() for c in suffix)
    wrong_shape = (entry.parametrized and not valid_suffix) or (sep and not entry.parametrized)
    if wrong_shape:
        raise InvalidRequestError(
            f"Unknown ledger account code {code!r}.", code="account_code_invalid", param="account"
        )
    return entry


def psp_receivable(connector: str) -> str:
    return f"{PSP_RECEIVABLE}:{connector}"


def settlement_clearing(connector: str) -> str:
    return f"{SETTLEMENT_CLEARING}:{connector}"


def seller_pending(seller_id: str | int) -> str:
    return f"{SELLER_PENDING}:{seller_id}"


def seller_available(seller_id: str | int) -> str:
    return f"{SELLER_AVAILABLE}:{seller_id}"


def is_pending_funds(code: str) -> bool:
    """Accounts whose funds a settlement release moves to the matching available account."""
    return code in (MERCHANT_PENDING, MERCHANT_SURCHARGE) or code.startswith(SELLER_PENDING + ":")


def available_for(pending_code: str) -> str:
    if pending_code in (MERCHANT_PENDING, MERCHANT_SURCHARGE):
        return MERCHANT_AVAILABLE
    return SELLER_AVAILABLE + pending_code[len(SELLER_PENDING) :]


@dataclass(frozen=True)
class Leg:
    """One line of a journal: an account code and a signed amount (+debit, -credit), in minor
    units of the journal's currency. `currency`, when given, must equal the journal's."""

    account: str
    amount: int
    currency: str | None = None

    @classmethod
    def debit(cls, account: str, amount: int) -> Leg:
        return cls(account, amount)

    @classmethod
    def credit(cls, account: str, amount: int) -> Leg:
        return cls(account, -amount)
