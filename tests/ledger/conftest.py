"""Ledger test fixtures. Every ledger test that touches the database ends with the ledger's
invariants asserted: per currency, posted balances net to zero and pending debits equal pending
credits; every account matches its entries (balance, chain, versions); every journal balances."""

from __future__ import annotations

import itertools

import pytest

from tests.ledger import support

_merchant_ids = itertools.count(10_001)


@pytest.fixture
def merchant_id() -> int:
    return next(_merchant_ids)


@pytest.fixture
def ledger_drift_allowed() -> None:
    """Requested by a test that corrupts the ledger on purpose: skips the invariant check."""


@pytest.fixture(autouse=True)
def _ledger_invariants(request):
    marker = request.node.get_closest_marker("django_db")
    if marker is None or "ledger_drift_allowed" in request.fixturenames:
        yield
        return
    # requested here so that this teardown runs before the database is flushed
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    yield
    support.assert_zero_sums()
    support.assert_accounts_match_entries()
    support.assert_journals_balanced()
