"""The signals of one payment (docs/risk.md "Signals"): what rules and the score read.

The client IP comes from the confirm request's `Radar-Client-Ip` header (the merchant's server
or our checkout page sends the shopper's address); its country from `iptocc`, an offline
IP-to-country table shipped inside the package (no network call, ~0.2 µs a lookup)."""

from __future__ import annotations

import ipaddress

import iptocc

# EEA (EU + IS, LI, NO) and the UK: where PSD2/UK SCA applies
EEA_COUNTRIES = frozenset(
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
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    }
)
SCA_COUNTRIES = EEA_COUNTRIES | {"GB"}

CLIENT_IP_HEADER = "Radar-Client-Ip"


def client_ip_valid(value: str) -> str:
    """The header's value as a normalized IP address; raises ValueError if it is not one."""
    return str(ipaddress.ip_address(value.strip()))


def ip_country(ip: str) -> str:
    if not ip:
        return ""
    try:
        return (iptocc.country_code(ip) or "").upper()
    except Exception:  # an address the table cannot read: unknown, not an error
        return ""


def payment_signals(
    *,
    amount: int,
    currency: str,
    card: dict,
    email: str,
    client_ip: str,
    customer: str,
    metadata: dict,
    merchant_country: str,
    customer_initiated: bool = True,
) -> dict:
    """`card`: brand, funding, bin, issuer_country, fingerprint (the vault's facts)."""
    email = (email or "").strip().lower()
    card_country = (card.get("issuer_country") or "").upper()
    return {
        "amount": amount,
        "currency": currency.lower(),
        "card_fingerprint": card.get("fingerprint") or "",
        "card_bin": card.get("bin") or "",
        "card_brand": card.get("brand") or "",
        "card_funding": card.get("funding") or "",
        "card_country": card_country,
        "email": email,
        "email_domain": email.rpartition("@")[2] if "@" in email else "",
        "ip_address": client_ip or "",
        "ip_country": ip_country(client_ip),
        "customer": customer or "",
        "merchant_country": (merchant_country or "").upper(),
        "is_eea_card": card_country in SCA_COUNTRIES,
        "is_customer_initiated": customer_initiated,
        "metadata": metadata or {},
    }
