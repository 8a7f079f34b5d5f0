"""Surcharges (docs/risk.md "Surcharges"): the amount a payment's card adds, from the
merchant's surcharge rules, computed at confirm in tx A (after Radar, before routing) from the
same per-process cache as the rules (no extra round trip)."""

from __future__ import annotations

from dataclasses import dataclass

from apps.risk.signals import SCA_COUNTRIES


@dataclass(frozen=True)
class CompiledSurcharge:
    id: str
    currency: str
    brand: str
    funding: str
    country: str
    percent_bps: int
    fixed: int
    cap: int | None

    def matches(self, currency: str, brand: str, funding: str, country: str) -> bool:
        return (
            self.currency == currency
            and self.brand in ("*", brand)
            and self.funding in ("*", funding)
            and self.country in ("*", country)
        )

    @property
    def specificity(self) -> int:
        return sum(value != "*" for value in (self.brand, self.funding, self.country))

    def amount_for(self, base: int) -> int:
        amount = self.fixed + base * self.percent_bps // 10000
        return min(amount, self.cap) if self.cap is not None else amount


def surcharge_for(rules: list[CompiledSurcharge], *, base: int, currency: str, card: dict) -> dict:
    """{"amount", "rule", "reason"}: the most specific matching rule's surcharge on `base`."""
    country = (card.get("issuer_country") or "").upper()
    brand, funding = card.get("brand") or "", card.get("funding") or ""
    matching = [r for r in rules if r.matches(currency, brand, funding, country)]
    if not matching:
        return {"amount": 0, "rule": None, "reason": "no_rule"}
    rule = max(matching, key=lambda r: (r.specificity, r.id))
    if country in SCA_COUNTRIES:
        # consumer cards issued in the EEA/UK may not be surcharged (the vault does not tell
        # consumer from commercial cards, so none of them is)
        return {"amount": 0, "rule": rule.id, "reason": "forbidden_eea_consumer_card"}
    return {"amount": rule.amount_for(base), "rule": rule.id, "reason": "rule"}
