"""Primitives shared by the merchants services and selectors (no database access here)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from apps.merchants.models import ApiKey

BANK_AAD_PREFIX = "seller-bank:"


def hash_api_key(raw_key: str) -> str:
    # keys are long random strings, so a fast hash is safe (no dictionary to attack) and keeps
    # authentication at one indexed lookup
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_prefix(kind: str, livemode: bool) -> str:
    return f"{'sk' if kind == ApiKey.Kind.SECRET else 'pk'}_{'live' if livemode else 'test'}_"


@dataclass(frozen=True)
class BankAccountDetails:
    """A seller's payout bank account in clear: only decrypted to hand it to the payout
    provider, never stored or logged."""

    country: str
    currency: str
    account_holder_name: str
    account_number: str
    routing_number: str = ""
