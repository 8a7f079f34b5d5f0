"""Ledger postings for checkout-plane state changes, called inside the same transaction as the
state change. The ledger is a leaf: only primitives cross this line."""

from __future__ import annotations


def on_authorized(*, intent, attempt) -> None:
    return None


def on_captured(*, intent, amount: int) -> None:
    return None


def on_voided(*, intent) -> None:
    return None


def on_refunded(*, intent, refund) -> None:
    return None
