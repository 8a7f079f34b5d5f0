"""SCA / 3-D Secure decisions (docs/risk.md "SCA"), made in tx A with the risk assessment.

`request_three_d_secure` as Stripe spells it: `any` / `challenge` always ask for 3DS;
`automatic` (the default) asks when a `request_3ds` rule matched, when the score is elevated,
or when SCA applies (PSD2 / UK: card and merchant in the EEA or the UK, customer-initiated)
and no exemption may be claimed. Exemptions, in this order:
- merchant_initiated: the merchant says the shopper is not present (out of SCA's scope);
- low_value: under 30 EUR (25 GBP), within the cumulative limits (at most 5 payments and
  100 EUR on the card in the last 24 h, counted by the velocity counters);
- transaction_risk_analysis: a score under TRA_MAX_SCORE and an amount within the platform's
  fraud-rate band (settings.RISK_TRA_LIMITS, minor units per currency).
The decision records which, and why."""

from __future__ import annotations

from django.conf import settings

from apps.risk.score import ELEVATED_AT
from apps.risk.signals import SCA_COUNTRIES

LOW_VALUE_LIMITS = {"eur": 3000, "gbp": 2500}
LOW_VALUE_MAX_COUNT = 5
LOW_VALUE_MAX_TOTAL = {"eur": 10000, "gbp": 8500}
TRA_MAX_SCORE = 30
MODES = ("automatic", "any", "challenge")
EXEMPTIONS = ("low_value", "transaction_risk_analysis", "merchant_initiated")


def exemption_refusal(*, amount: int, currency: str, mode: str, exemption: str) -> str | None:
    """Why a merchant's requested exemption is not allowed (None: allowed); checked when the
    intent is created, so a bad request saves nothing."""
    if not exemption:
        return None
    if exemption not in EXEMPTIONS:
        return f"sca_exemption must be one of {', '.join(EXEMPTIONS)}."
    if mode in ("any", "challenge"):
        return f"An exemption cannot be claimed while asking for 3-D Secure ({mode})."
    if exemption == "low_value":
        limit = LOW_VALUE_LIMITS.get(currency)
        if limit is None:
            return f"The low-value exemption does not cover {currency.upper()} payments."
        if amount >= limit:
            return f"The low-value exemption covers payments under {limit} ({currency})."
    if exemption == "transaction_risk_analysis":
        limit = settings.RISK_TRA_LIMITS.get(currency)
        if limit is None:
            return f"The TRA exemption does not cover {currency.upper()} payments."
        if amount > limit:
            return f"The TRA exemption covers payments up to {limit} ({currency})."
    return None


def sca_decide(*, options: dict, assessment, signals: dict) -> dict:
    """{requested: "" | any | challenge, reason, exemption, sca_applies, rule}."""
    mode = options.get("request_three_d_secure") or "automatic"
    asked = options.get("sca_exemption") or ""
    amount, currency = signals["amount"], signals["currency"]
    applies = (
        signals.get("card_country") in SCA_COUNTRIES
        and signals.get("merchant_country") in SCA_COUNTRIES
        and asked != "merchant_initiated"
    )
    decision = {"requested": "", "reason": "", "exemption": "", "sca_applies": applies}
    if mode in ("any", "challenge"):
        return {**decision, "requested": mode, "reason": "merchant_requested"}
    if assessment.request_3ds is not None:
        return {
            **decision,
            "requested": "any",
            "reason": "rule",
            "rule": assessment.request_3ds.id,
        }
    if assessment.risk_score >= ELEVATED_AT:
        return {**decision, "requested": "any", "reason": "risk_score"}
    if asked == "merchant_initiated":
        return {**decision, "exemption": "merchant_initiated", "reason": "merchant_initiated"}
    if not applies:
        return {**decision, "reason": "sca_not_applicable"}
    if _low_value_allowed(amount, currency, signals) and asked in ("", "low_value"):
        return {**decision, "exemption": "low_value", "reason": "exemption"}
    tra_limit = settings.RISK_TRA_LIMITS.get(currency)
    if (
        asked in ("", "transaction_risk_analysis")
        and tra_limit is not None
        and amount <= tra_limit
        and assessment.risk_score < TRA_MAX_SCORE
    ):
        return {**decision, "exemption": "transaction_risk_analysis", "reason": "exemption"}
    return {**decision, "requested": "any", "reason": "sca_required"}


def _low_value_allowed(amount: int, currency: str, signals: dict) -> bool:
    limit = LOW_VALUE_LIMITS.get(currency)
    if limit is None or amount >= limit:
        return False
    # the counters include this payment
    return (
        signals.get("charges_per_card_daily", 1) <= LOW_VALUE_MAX_COUNT
        and signals.get("amount_per_card_daily", amount) <= LOW_VALUE_MAX_TOTAL[currency]
    )
