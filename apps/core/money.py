"""Money helpers: integer minor units with ISO 4217 exponents (from the `iso4217` package,
which ships the standard's published table), validation with one error code per failure."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache

import iso4217
from django.conf import settings

from apps.core.errors import InvalidRequestError

# Codes without a defined minor unit (gold, SDRs, test codes) cannot be charged.
_NON_TRANSACTIONAL = {"XXX", "XTS"}


@lru_cache(maxsize=512)
def currency_exponent(currency: str) -> int:
    """Exponent of an ISO 4217 currency (USD 2, JPY 0, KWD 3). Raises for unknown codes."""
    code = currency.upper()
    try:
        exponent = iso4217.Currency(code).exponent
    except ValueError:
        raise InvalidRequestError(
            f"Unknown currency {currency!r}: use a three-letter ISO 4217 code such as 'eur'.",
            code="currency_invalid",
            param="currency",
        ) from None
    if exponent is None or code in _NON_TRANSACTIONAL:
        raise InvalidRequestError(
            f"Currency {currency!r} has no minor unit and cannot be charged.",
            code="currency_unsupported",
            param="currency",
        )
    return exponent


def normalize_currency(currency, *, param: str = "currency") -> str:
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise InvalidRequestError(
            "Currency must be a three-letter ISO 4217 code such as 'eur'.",
            code="currency_invalid",
            param=param,
        )
    try:
        currency_exponent(currency)
    except InvalidRequestError as exc:
        exc.param = param
        raise
    return currency.lower()


def validate_amount(amount, *, param: str = "amount", maximum: int | None = None) -> int:
    """A chargeable amount: a positive integer of minor units, at most the configured maximum."""
    # bool is an int subclass; a JSON `true` is not an amount
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequestError(
            "Amount must be an integer in the currency's minor unit (e.g. 1999 for 19.99 EUR).",
            code="amount_invalid",
            param=param,
        )
    if amount <= 0:
        raise InvalidRequestError(
            "Amount must be greater than zero.", code="amount_too_small", param=param
        )
    limit = settings.MAX_PAYMENT_AMOUNT if maximum is None else maximum
    if amount > limit:
        raise InvalidRequestError(
            f"Amount must be at most {limit}.", code="amount_too_large", param=param
        )
    return amount


def decimal_to_minor(value: str | Decimal, currency: str) -> int:
    """Parse a major-unit decimal (from a CSV file) into exact minor units; refuses sub-minor
    precision rather than rounding money silently."""
    exponent = currency_exponent(currency)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidRequestError(f"{value!r} is not a decimal amount.", code="amount_invalid")
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise InvalidRequestError(
            f"{value} has more decimals than {currency.upper()} allows.", code="amount_invalid"
        )
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


def minor_to_decimal(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-currency_exponent(currency))


# Symbols for the admin's amounts (issue 17): the common ones; any other currency is written
# with its code ("CHF 12.50", "KWD 1.250").
_SYMBOLS = {
    "EUR": "€",
    "USD": "$",
    "GBP": "£",
    "JPY": "¥",
    "INR": "₹",
    "KRW": "₩",
    "BRL": "R$",
    "AUD": "A$",
    "CAD": "CA$",
    "PLN": "zł ",
    "SEK": "kr ",
    "NOK": "kr ",
    "DKK": "kr ",
}


def format_amount(amount: int | None, currency: str | None) -> str:
    """Minor units as people read them: `format_amount(4599, "eur")` → "€45.99",
    `(-1050, "usd")` → "-$10.50", `(500, "jpy")` → "¥500", `(1250, "kwd")` → "KWD 1.250";
    thousands separated by commas. "—" for a missing amount."""
    if amount is None or not currency:
        return "—"
    code = currency.upper()
    try:
        exponent = currency_exponent(code)
    except InvalidRequestError:
        return f"{amount} {code}"
    value = Decimal(abs(int(amount))).scaleb(-exponent)
    number = f"{value:,.{exponent}f}"
    sign = "-" if int(amount) < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{code} {number}"
