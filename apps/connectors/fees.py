"""PSP fees from a connector's fee schedule (least-cost routing, fee estimates, backtests).

A schedule is a list of lines `{"brand", "region", "currency", "fixed", "percent_bps"}`; "*"
(or a missing key) matches anything. `region` is "*", an ISO 3166 country of the card issuer
("DE"), "eea" or "non_eea". The most specific matching line wins (brand, then region, then
currency); the fee is `fixed + amount * percent_bps / 10000`, rounded half up."""

from __future__ import annotations

from typing import Any

# the European Economic Area (fee schedules often price intra-EEA cards differently)
EEA = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IS",
        "IE",
        "IT",
        "LV",
        "LI",
        "LT",
        "LU",
        "MT",
        "NL",
        "NO",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    }
)
REGION_GROUPS = ("eea", "non_eea")


def region_matches(wanted: str, issuer_country: str) -> bool:
    if wanted in ("*", ""):
        return True
    country = (issuer_country or "").upper()
    if wanted == "eea":
        return country in EEA
    if wanted == "non_eea":
        return bool(country) and country not in EEA
    return wanted.upper() == country


def fee_line(
    fee_schedule: list[dict[str, Any]],
    *,
    currency: str,
    brand: str = "*",
    region: str = "*",
    kind: str = "payment",
) -> dict | None:
    best, best_score = None, -1
    for line in fee_schedule:
        if line.get("kind", "payment") != kind:
            continue
        score = 0
        line_brand = line.get("brand", "*")
        if line_brand not in ("*", brand):
            continue
        score += 4 if line_brand != "*" else 0
        line_region = line.get("region", "*")
        if region == "*" and line_region != "*":
            continue
        if not region_matches(line_region, region if region != "*" else ""):
            continue
        score += 2 if line_region != "*" else 0
        line_currency = line.get("currency", "*")
        if line_currency not in ("*", currency):
            continue
        score += 1 if line_currency != "*" else 0
        if score > best_score:
            best, best_score = line, score
    return best


def estimate_fee_from_schedule(
    fee_schedule: list[dict[str, Any]],
    *,
    amount: int,
    currency: str,
    brand: str = "*",
    region: str = "*",
) -> int:
    line = fee_line(fee_schedule, currency=currency, brand=brand or "*", region=region or "*")
    if line is None:
        return 0
    return int(line.get("fixed", 0)) + (amount * int(line.get("percent_bps", 0)) + 5000) // 10000
