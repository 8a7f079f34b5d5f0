"""The risk score: a transparent, weighted model (docs/risk.md "Score").

Each factor adds points when its signal is present; the contributions are stored with the
outcome and shown in the admin, and the score is their sum capped at 100. Levels follow
Stripe's bands: normal below 65, elevated from 65, highest from 75."""

from __future__ import annotations

ELEVATED_AT = 65
HIGHEST_AT = 75


def _declines_card(s):
    n = s.get("declines_per_card_hourly", 0)
    return min(40, 15 * n) if n else 0


def _cards_ip(s):
    n = s.get("cards_per_ip_hourly", 0)
    return min(35, 12 * (n - 2)) if n > 2 else 0


def _cards_email(s):
    n = s.get("cards_per_email_daily", 0)
    return min(20, 8 * (n - 2)) if n > 2 else 0


def _declines_ip(s):
    n = s.get("declines_per_ip_hourly", 0)
    return min(25, 8 * n) if n else 0


def _burst_card(s):
    return 10 if s.get("charges_per_card_minutely", 0) > 3 else 0


def _country_mismatch(s):
    a, b = s.get("card_country"), s.get("ip_country")
    return 25 if a and b and a != b else 0


def _no_ip(s):
    return 5 if not s.get("ip_country") else 0


def _no_email(s):
    return 5 if not s.get("email") else 0


def _prepaid(s):
    return 5 if s.get("card_funding") == "prepaid" else 0


# (factor, what it says), in the order they are shown
FACTORS = (
    ("card_country_mismatch", "card issued in another country than the IP's", _country_mismatch),
    (
        "declines_per_card_hourly",
        "15 a decline of this card in the last hour, up to 40",
        _declines_card,
    ),
    ("declines_per_ip_hourly", "8 a decline from this IP in the last hour, up to 25", _declines_ip),
    ("cards_per_ip_hourly", "12 a card past 2 from this IP in the last hour, up to 35", _cards_ip),
    ("cards_per_email_daily", "8 a card past 2 for this email today, up to 20", _cards_email),
    ("charges_per_card_minutely", "more than 3 attempts of this card in a minute", _burst_card),
    ("ip_country_unknown", "no client IP, or one without a country", _no_ip),
    ("email_missing", "no customer email", _no_email),
    ("prepaid_card", "a prepaid card", _prepaid),
)


def risk_score(signals: dict) -> tuple[int, dict[str, int]]:
    contributions = {}
    for name, _, fn in FACTORS:
        points = fn(signals)
        if points:
            contributions[name] = points
    return min(100, sum(contributions.values())), contributions


def risk_level(score: int) -> str:
    if score >= HIGHEST_AT:
        return "highest"
    if score >= ELEVATED_AT:
        return "elevated"
    return "normal"
