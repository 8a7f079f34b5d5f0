"""Marketplace sellers: /v1/sellers, bank details kept as a token, and the seller lookup that
payment-intent splits and payouts use."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography.exceptions import InvalidTag

from apps.core.errors import InvalidRequestError
from apps.core.models import AuditLogEntry
from apps.merchants import selectors
from apps.merchants.models import Seller
from tests.factories import SellerFactory

US_BANK = {
    "country": "US",
    "currency": "usd",
    "account_holder_name": "Jenny Rosen",
    "account_number": "000123456789",
    "routing_number": "110000000",
}
DE_IBAN = "DE89370400440532013000"


def _create(api, key=None, **overrides):
    body = {
        "name": "Jenny's Shop",
        "email": "jenny@example.com",
        "country": "US",
        "bank_account": dict(US_BANK),
        **overrides,
    }
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post("/v1/sellers", body, format="json", **headers)


def _seller(merchant, *, livemode=False, **extra):
    return SellerFactory(
        merchant=merchant,
        livemode=livemode,
        name="Shop",
        country="DE",
        bank_account={"currency": "eur", "account_number": DE_IBAN},
        **extra,
    )


def test_create_keeps_the_account_number_only_encrypted(api, merchant):
    # when a seller is created with a US bank account
    response = _create(api, payout_schedule={"interval": "weekly", "weekly_anchor": "friday"})

    # then the answer shows the token, last4 and fingerprint, never the number
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"].startswith("sel_")
    assert body["object"] == "seller"
    assert body["payout_schedule"] == {"interval": "weekly", "weekly_anchor": "friday"}
    bank = body["bank_account"]
    assert bank["id"].startswith("ba_")
    assert (bank["last4"], bank["currency"], bank["country"]) == ("6789", "usd", "US")
    assert "000123456789" not in response.content.decode()
    # and the row holds the number only as ciphertext, which decrypts for the payout call only
    seller = Seller.objects.get(public_id=body["id"])
    assert b"000123456789" not in bytes(seller.bank_account_encrypted)
    assert selectors.seller_bank_account(seller=seller).account_number == "000123456789"
    assert selectors.seller_bank_account(seller=seller).routing_number == "110000000"
    # and the audit log names the seller without the number
    entry = AuditLogEntry.objects.get(action="seller.created")
    assert entry.object_id == body["id"]
    assert "000123456789" not in str(entry.changes)


def test_ciphertext_is_bound_to_its_seller(merchant):
    first, second = _seller(merchant), _seller(merchant)
    second.bank_account_encrypted = first.bank_account_encrypted
    second.bank_account_key_id = first.bank_account_key_id
    with pytest.raises(InvalidTag):
        selectors.seller_bank_account(seller=second)


def test_same_account_same_fingerprint_other_token(merchant):
    first, second = _seller(merchant), _seller(merchant)
    assert first.bank_fingerprint == second.bank_fingerprint
    assert first.bank_token != second.bank_token


def test_payout_schedule_defaults_to_daily(api):
    body = _create(api).json()
    assert body["payout_schedule"] == {"interval": "daily", "weekly_anchor": None}


def test_iban_accounts_are_accepted_with_spaces(api):
    response = _create(
        api,
        country="DE",
        bank_account={"currency": "eur", "account_number": "de89 3704 0044 0532 0130 00"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["bank_account"]["last4"] == "3000"
    assert response.json()["bank_account"]["account_holder_name"] == "Jenny's Shop"


@pytest.mark.parametrize(
    ("bank", "param"),
    [
        ({"account_number": "DE89370400440532013001"}, "bank_account[account_number]"),  # check
        ({"account_number": "FR1420041010050500013M02606"}, "bank_account[account_number]"),
        ({"account_number": "0532013000"}, "bank_account[account_number]"),  # DE needs an IBAN
        ({"country": "US", "account_number": "000123456789"}, "bank_account[routing_number]"),
        (
            {"country": "US", "account_number": "000123456789", "routing_number": "110000001"},
            "bank_account[routing_number]",
        ),
        (
            {"country": "US", "account_number": "12AB", "routing_number": "110000000"},
            "bank_account[account_number]",
        ),
        (
            {"country": "US", "account_number": "123", "routing_number": "110000000"},
            "bank_account[account_number]",
        ),
        ({"country": "GB", "account_number": "00012345"}, "bank_account[routing_number]"),
        ({"country": "D", "account_number": DE_IBAN}, "bank_account[country]"),
    ],
)
def test_bad_bank_details_are_refused_and_nothing_is_written(api, bank, param):
    # when the bank details are wrong
    response = _create(
        api, country="DE", bank_account={"currency": "eur", **bank}, key="seller-bad"
    )

    # then a 400 names the field, and nothing is stored (not even the idempotency key)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("bank_account_invalid", param)
    assert Seller.objects.count() == 0
    assert not AuditLogEntry.objects.filter(action="seller.created").exists()
    fixed = _create(api, key="seller-bad")
    assert fixed.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "code", "param"),
    [
        ({"bank_account": {**US_BANK, "currency": "xyz"}}, "currency_invalid", None),
        ({"bank_account": {**US_BANK, "iban": "x"}}, "parameter_unknown", None),
        ({"bank_account": None}, "parameter_missing", "bank_account"),
        ({"payout_schedule": {"interval": "hourly"}}, None, "payout_schedule[interval]"),
        (
            {"payout_schedule": {"interval": "daily", "weekly_anchor": "monday"}},
            "parameter_invalid",
            "payout_schedule[weekly_anchor]",
        ),
        ({"country": "USA"}, None, "country"),
        ({"name": ""}, "parameter_missing", "name"),
        ({"nickname": "x"}, "parameter_unknown", "nickname"),
    ],
)
def test_other_bad_input_is_refused_with_a_clear_code(api, overrides, code, param):
    response = _create(api, **overrides)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    if code:
        assert error["code"] == code
    if param:
        assert error["param"] == param
    else:
        assert error["param"].startswith("bank_account[")
    assert Seller.objects.count() == 0


def test_create_is_idempotent(api):
    first = _create(api, key="seller-1")
    again = _create(api, key="seller-1")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Seller.objects.count() == 1


def test_retrieve_and_list_are_scoped_to_the_merchant_and_mode(api, merchant, other_merchant):
    mine = [_create(api).json()["id"] for _ in range(3)]
    theirs = _seller(other_merchant)
    live = _seller(merchant, livemode=True)

    assert api.get(f"/v1/sellers/{mine[0]}").json()["id"] == mine[0]
    for foreign in (theirs.public_id, live.public_id, "sel_missing"):
        response = api.get(f"/v1/sellers/{foreign}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "resource_missing"

    page = api.get("/v1/sellers", {"limit": 2}).json()
    assert [s["id"] for s in page["data"]] == mine[::-1][:2]
    assert page["has_more"] is True
    rest = api.get("/v1/sellers", {"limit": 2, "starting_after": mine[1]}).json()
    assert [s["id"] for s in rest["data"]] == [mine[0]]
    assert rest["has_more"] is False


def test_seller_lookup_for_splits(merchant, other_merchant):
    mine, theirs = _seller(merchant), _seller(other_merchant)
    live = _seller(merchant, livemode=True)

    found = selectors.seller_get_for_split(
        merchant_id=merchant.id, livemode=False, public_id=mine.public_id
    )
    assert found == mine
    assert found.ledger_id == mine.public_id

    for public_id, code in [
        (theirs.public_id, "seller_not_found"),  # another merchant's: told apart from nothing
        (live.public_id, "seller_not_found"),
        ("sel_doesnotexist", "seller_not_found"),
        ("acct_123", "seller_invalid"),
    ]:
        with pytest.raises(InvalidRequestError) as refused:
            selectors.seller_get_for_split(
                merchant_id=merchant.id,
                livemode=False,
                public_id=public_id,
                param="splits[0][seller]",
            )
        assert (refused.value.code, refused.value.param) == (code, "splits[0][seller]")
        assert refused.value.http_status == 400


def test_sellers_due_for_payout(merchant):
    daily = _seller(merchant)
    weekly = _seller(merchant, payout_schedule={"interval": "weekly", "weekly_anchor": "wednesday"})
    _seller(merchant, payout_schedule={"interval": "manual"})
    wednesday, thursday = date(2026, 11, 25), date(2026, 11, 26)
    assert list(selectors.sellers_due_for_payout(on=wednesday)) == [daily, weekly]
    assert list(selectors.sellers_due_for_payout(on=thursday)) == [daily]
