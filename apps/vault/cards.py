"""Pure card-number rules: brand from IIN ranges, Luhn, and a small BIN table for funding and
issuer country. No I/O, no Django. Only the vault imports this: it is the only code that holds a
full card number.

Brand (IIN ranges, checked in this order):
    visa 4 · mastercard 51-55, 2221-2720 · amex 34, 37 · discover 6011, 644-649, 65 ·
    jcb 3528-3589 · diners 300-305, 3095, 36, 38, 39 · unionpay 62, 81 · otherwise unknown.
    (622126-622925 is UnionPay co-branded with Discover: we report unionpay, the issuer's brand.)

Funding and issuer country come from `BIN_TABLE` below: the longest matching prefix of the number
wins. It covers the Stripe test cards our PSP simulator accepts
(https://docs.stripe.com/testing): brand cards (4242…, 5555…, 3782…, …) and Stripe's decline and
3DS cards (4000 0000 00…) are credit cards issued in the US unless Stripe publishes otherwise
(4000056655665556 visa debit, 5200828282828210 mastercard debit, 5105105105105100 mastercard
prepaid, …); Stripe's country cards `400000<ISO 3166 numeric><…>` (4000000760000002 BR,
4000002500000003 FR, 4000008260000000 GB, …) are credit cards of that country. A number the table
does not know is funding "unknown" with no issuer country ("") until a real BIN database is
plugged in here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VISA, MASTERCARD, AMEX, DISCOVER = "visa", "mastercard", "amex", "discover"
JCB, DINERS, UNIONPAY, UNKNOWN = "jcb", "diners", "unionpay", "unknown"
BRANDS = (VISA, MASTERCARD, AMEX, DISCOVER, JCB, DINERS, UNIONPAY, UNKNOWN)
FUNDINGS = ("credit", "debit", "prepaid", "unknown")

MIN_LENGTH, MAX_LENGTH = 12, 19
BIN_LENGTH = 6  # we keep the first 6 digits for every card length (PCI: first 6 + last 4)

# Allowed number lengths per brand.
_LENGTHS: dict[str, frozenset[int]] = {
    VISA: frozenset({13, 16, 19}),
    MASTERCARD: frozenset({16}),
    AMEX: frozenset({15}),
    DISCOVER: frozenset(range(16, 20)),
    JCB: frozenset(range(16, 20)),
    DINERS: frozenset(range(14, 20)),
    UNIONPAY: frozenset(range(16, 20)),
    UNKNOWN: frozenset(range(MIN_LENGTH, MAX_LENGTH + 1)),
}

_SEPARATORS = re.compile(r"[ \-]")


def normalize_number(raw: str) -> str:
    """Strips the spaces and dashes people type; anything else is left for validation."""
    return _SEPARATORS.sub("", raw)


def detect_brand(number: str) -> str:
    n2, n3, n4 = int(number[:2] or 0), int(number[:3] or 0), int(number[:4] or 0)
    if number.startswith("4"):
        return VISA
    if 51 <= n2 <= 55 or 2221 <= n4 <= 2720:
        return MASTERCARD
    if n2 in (34, 37):
        return AMEX
    if number.startswith(("6011", "65")) or 644 <= n3 <= 649:
        return DISCOVER
    if 3528 <= n4 <= 3589:
        return JCB
    if 300 <= n3 <= 305 or number.startswith("3095") or n2 in (36, 38, 39):
        return DINERS
    if number.startswith(("62", "81")):
        return UNIONPAY
    return UNKNOWN


def length_valid(number: str, brand: str) -> bool:
    return len(number) in _LENGTHS[brand]


def luhn_valid(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def cvc_length(brand: str) -> int:
    return 4 if brand == AMEX else 3


@dataclass(frozen=True)
class BinFacts:
    funding: str  # credit | debit | prepaid | unknown
    issuer_country: str  # ISO 3166-1 alpha-2, "" when unknown


UNKNOWN_BIN = BinFacts(funding="unknown", issuer_country="")

# Stripe's country test cards: 400000 + ISO 3166 numeric code + …
_STRIPE_COUNTRY_CARDS = {
    "036": "AU", "040": "AT", "056": "BE", "076": "BR", "124": "CA", "156": "CN", "208": "DK",
    "233": "EE", "246": "FI", "250": "FR", "276": "DE", "300": "GR", "344": "HK", "356": "IN",
    "372": "IE", "380": "IT", "392": "JP", "428": "LV", "440": "LT", "442": "LU", "458": "MY",
    "484": "MX", "528": "NL", "554": "NZ", "578": "NO", "616": "PL", "620": "PT", "642": "RO",
    "702": "SG", "703": "SK", "705": "SI", "724": "ES", "752": "SE", "756": "CH", "764": "TH",
    "826": "GB", "840": "US",
}  # fmt: skip

# prefix -> facts; the longest matching prefix wins
BIN_TABLE: dict[str, BinFacts] = {
    # generic Stripe brand test cards: credit, US
    "4242424242": BinFacts("credit", "US"),  # 4242424242424242 visa
    "4000000000": BinFacts("credit", "US"),  # 4000000000000002 …: decline / 3DS / risk cards
    "4100000000": BinFacts("credit", "US"),  # 4100000000000019 highest-risk card
    "5555555555": BinFacts("credit", "US"),  # 5555555555554444 mastercard
    "2223003122": BinFacts("credit", "US"),  # 2223003122003222 mastercard 2-series
    "378282": BinFacts("credit", "US"),  # 378282246310005 amex
    "371449": BinFacts("credit", "US"),  # 371449635398431 amex
    "601111111111": BinFacts("credit", "US"),  # 6011111111111117 discover
    "6011000990": BinFacts("credit", "US"),  # 6011000990139424 discover
    "30569300": BinFacts("credit", "US"),  # 3056930009020004 diners
    "36227206": BinFacts("credit", "US"),  # 36227206271667 diners (14 digits)
    "35660020": BinFacts("credit", "US"),  # 3566002020360505 jcb
    "620000000000000": BinFacts("credit", "US"),  # 6200000000000005 unionpay
    "62055000": BinFacts("credit", "US"),  # 6205500000000000004 unionpay (19 digits)
    # Stripe's debit and prepaid cards
    "40000566": BinFacts("debit", "US"),  # 4000056655665556 visa debit
    "52008282": BinFacts("debit", "US"),  # 5200828282828210 mastercard debit
    "51051051": BinFacts("prepaid", "US"),  # 5105105105105100 mastercard prepaid
    "60119811": BinFacts("debit", "US"),  # 6011981111111113 discover debit
    "6200000000000047": BinFacts("debit", "US"),  # unionpay debit
    "4000058260": BinFacts("debit", "GB"),  # 4000058260000005 visa debit GB
    "55555582": BinFacts("debit", "GB"),  # 5555558265554449 mastercard debit GB
    "3530111333": BinFacts("credit", "JP"),  # 3530111333300000 jcb JP
    # Stripe's country cards: 4000000760000002 BR, 4000002500000003 FR, …
    **{f"400000{numeric}": BinFacts("credit", alpha2) for numeric, alpha2 in
       _STRIPE_COUNTRY_CARDS.items()},
}  # fmt: skip

_PREFIX_LENGTHS = sorted({len(prefix) for prefix in BIN_TABLE}, reverse=True)


def bin_facts(number: str) -> BinFacts:
    for length in _PREFIX_LENGTHS:
        facts = BIN_TABLE.get(number[:length])
        if facts is not None and len(number) >= length:
            return facts
    return UNKNOWN_BIN
