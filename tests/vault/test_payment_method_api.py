"""POST /v1/payment_methods (tokenize) and GET /v1/payment_methods/{id}."""

from __future__ import annotations

import json
import logging

import pytest
from django.utils import timezone

from apps.core.models import AuditLogEntry, IdempotencyRecord
from apps.vault.models import PaymentMethod
from tests.support.pan_scan import find_pans_in_text
from tests.vault.conftest import VISA, card_payload


def assert_error(response, status, code, param, error_type="invalid_request_error"):
    assert response.status_code == status, response.content
    error = json.loads(response.content)["error"]
    assert (error["type"], error["code"], error["param"]) == (error_type, code, param)
    return error


# --------------------------------------------------------------------------- tokenize


def test_publishable_key_tokenizes_a_card(pk_api, merchant):
    response = pk_api.post(
        "/v1/payment_methods",
        card_payload(billing_details={"name": "Jenny Rosen", "email": "jenny@example.com"}),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("pm_")
    assert body["object"] == "payment_method"
    assert body["type"] == "card"
    assert body["livemode"] is False
    assert isinstance(body["created"], int)
    assert body["billing_details"] == {"name": "Jenny Rosen", "email": "jenny@example.com"}
    card = body["card"]
    assert {
        k: card[k] for k in ("brand", "last4", "exp_month", "exp_year", "funding", "country")
    } == {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2034,
        "funding": "credit",
        "country": "US",
    }
    assert len(card["fingerprint"]) >= 20
    assert set(card) == {"brand", "last4", "exp_month", "exp_year", "funding", "country",
                         "fingerprint"}  # fmt: skip
    assert VISA not in response.content.decode()
    row = PaymentMethod.objects.get(public_id=body["id"])
    assert row.merchant_id == merchant.id
    assert (row.bin, row.last4, row.livemode) == ("424242", "4242", False)


def test_secret_key_tokenizes_a_card(api):
    response = api.post("/v1/payment_methods", card_payload("5555555555554444"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["card"]["brand"] == "mastercard"
    assert response.json()["billing_details"] == {"name": None, "email": None}


@pytest.mark.parametrize(
    ("number", "brand", "funding", "country"),
    [
        ("4000056655665556", "visa", "debit", "US"),
        ("5200828282828210", "mastercard", "debit", "US"),
        ("5105105105105100", "mastercard", "prepaid", "US"),
        ("4000000760000002", "visa", "credit", "BR"),
        ("4000002500000003", "visa", "credit", "FR"),
        ("4000 0000 0000 0077", "visa", "credit", "US"),
        ("4111-1111-1111-1111", "visa", "unknown", None),  # not a Stripe test card
    ],
)
def test_tokenize_reports_brand_funding_and_country(api, number, brand, funding, country):
    response = api.post("/v1/payment_methods", card_payload(number), format="json")

    assert response.status_code == 201, response.content
    card = response.json()["card"]
    assert (card["brand"], card["funding"], card["country"]) == (brand, funding, country)


def test_amex_takes_a_four_digit_cvc(api):
    response = api.post(
        "/v1/payment_methods", card_payload("378282246310005", cvc="1234"), format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["card"]["brand"] == "amex"


def test_two_digit_year_and_string_month_are_accepted(api):
    response = api.post(
        "/v1/payment_methods", card_payload(exp_month="07", exp_year="34"), format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["card"]["exp_month"], response.json()["card"]["exp_year"]) == (7, 2034)


def test_same_card_has_the_same_fingerprint(tokenize):
    first, second, other = tokenize(), tokenize(cvc="999"), tokenize("5555555555554444")
    assert first["card"]["fingerprint"] == second["card"]["fingerprint"]
    assert first["card"]["fingerprint"] != other["card"]["fingerprint"]
    assert first["id"] != second["id"]


def test_card_expiring_this_month_is_still_valid(api):
    now = timezone.now()
    response = api.post(
        "/v1/payment_methods", card_payload(exp_month=now.month, exp_year=now.year), format="json"
    )
    assert response.status_code == 201, response.content


def test_create_writes_an_audit_entry_with_brand_and_last4_only(api):
    response = api.post("/v1/payment_methods", card_payload(), format="json")

    entry = AuditLogEntry.objects.get(action="payment_method.created")
    assert entry.object_id == response.json()["id"]
    assert entry.changes == {"brand": [None, "visa"], "last4": [None, "4242"]}
    assert entry.actor_type == "api_key"
    assert entry.livemode is False
    assert not find_pans_in_text(json.dumps(entry.changes), {VISA})


def test_idempotent_replay_returns_the_same_payment_method(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "tok-1"}
    first = api.post("/v1/payment_methods", card_payload(), format="json", **headers)
    second = api.post("/v1/payment_methods", card_payload(), format="json", **headers)

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert PaymentMethod.objects.count() == 1


def test_tokenize_logs_last4_but_never_the_number(api, caplog):
    with caplog.at_level(logging.DEBUG):
        api.post("/v1/payment_methods", card_payload(), format="json")
    assert "4242" in caplog.text  # the last4 is how a log line names the card
    assert find_pans_in_text(caplog.text, {VISA}) == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("card", "code", "param"),
    [
        ({"number": "4242x42424242424"}, "invalid_number", "card[number]"),
        ({"number": "42424242"}, "invalid_number", "card[number]"),  # too short
        ({"number": "4" * 20}, "invalid_number", "card[number]"),  # too long
        ({"number": "424242424242424"}, "invalid_number", "card[number]"),  # 15: not a visa length
        ({"number": ["4242424242424242"]}, "invalid_number", "card[number]"),
        ({"number": "4242424242424241"}, "incorrect_number", "card[number]"),  # Luhn
        ({"exp_month": 13}, "invalid_expiry_month", "card[exp_month]"),
        ({"exp_month": 0}, "invalid_expiry_month", "card[exp_month]"),
        ({"exp_month": "ab"}, "invalid_expiry_month", "card[exp_month]"),
        ({"exp_month": True}, "invalid_expiry_month", "card[exp_month]"),
        ({"exp_year": "20x4"}, "invalid_expiry_year", "card[exp_year]"),
        ({"exp_year": 2999}, "invalid_expiry_year", "card[exp_year]"),
        ({"exp_year": 2020}, "expired_card", "card[exp_year]"),
        ({"cvc": "12"}, "invalid_cvc", "card[cvc]"),
        ({"cvc": "1234"}, "invalid_cvc", "card[cvc]"),  # 4 digits is amex only
        ({"cvc": "12a"}, "invalid_cvc", "card[cvc]"),
        ({"number": "378282246310005", "cvc": "123"}, "invalid_cvc", "card[cvc]"),
        ({"number": None}, "parameter_missing", "card[number]"),
        ({"exp_year": None}, "parameter_missing", "card[exp_year]"),
        ({"colour": "red"}, "parameter_unknown", "card[colour]"),
    ],
)
def test_bad_card_input_names_code_and_param_and_writes_nothing(api, card, code, param):
    payload = card_payload()
    payload["card"].update(card)
    payload["card"] = {k: v for k, v in payload["card"].items() if v is not None}
    audit_before = AuditLogEntry.objects.count()

    response = api.post(
        "/v1/payment_methods", payload, format="json", HTTP_IDEMPOTENCY_KEY=f"bad-{code}"
    )

    error = assert_error(response, 400, code, param)
    assert "4242424242424" not in error["message"]
    assert PaymentMethod.objects.count() == 0
    assert AuditLogEntry.objects.count() == audit_before
    assert IdempotencyRecord.objects.count() == 0  # a 400 releases the key


def test_past_month_of_this_year_is_expired_card_on_exp_month(api):
    now = timezone.now()
    if now.month == 1:
        pytest.skip("no past month in January")
    response = api.post(
        "/v1/payment_methods",
        card_payload(exp_month=now.month - 1, exp_year=now.year),
        format="json",
    )
    assert_error(response, 400, "expired_card", "card[exp_month]")
    assert PaymentMethod.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "code", "param"),
    [
        ({"type": "sepa_debit", "card": card_payload()["card"]}, "parameter_invalid_choice",
         "type"),
        ({"card": card_payload()["card"]}, "parameter_missing", "type"),
        ({"type": "card"}, "parameter_missing", "card"),
        ({**card_payload(), "billing_details": {"email": "nope"}}, "parameter_invalid",
         "billing_details[email]"),
        ({**card_payload(), "customer": "cus_1"}, "parameter_unknown", "customer"),
    ],
)  # fmt: skip
def test_bad_request_shape_is_a_400_and_writes_nothing(api, payload, code, param):
    response = api.post("/v1/payment_methods", payload, format="json")

    assert_error(response, 400, code, param)
    assert PaymentMethod.objects.count() == 0


def test_unknown_type_does_not_echo_what_was_sent(api):
    response = api.post(
        "/v1/payment_methods", {"type": VISA, "card": card_payload()["card"]}, format="json"
    )
    assert_error(response, 400, "parameter_invalid_choice", "type")
    assert VISA not in response.content.decode()


def test_tokenize_needs_an_api_key(anon_api, db):
    response = anon_api.post("/v1/payment_methods", card_payload(), format="json")
    assert response.status_code == 401
    assert PaymentMethod.objects.count() == 0


# --------------------------------------------------------------------------- retrieve


def test_retrieve_returns_the_payment_method(api, tokenize):
    created = tokenize(billing_details={"name": "Jenny Rosen"})

    response = api.get(f"/v1/payment_methods/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_retrieve_needs_a_secret_key(pk_api, tokenize):
    created = tokenize()
    response = pk_api.get(f"/v1/payment_methods/{created['id']}")
    assert_error(response, 403, "secret_key_required", None, error_type="permission_error")


def test_another_merchants_payment_method_is_not_found(other_api, tokenize):
    created = tokenize()
    response = other_api.get(f"/v1/payment_methods/{created['id']}")
    error = assert_error(response, 404, "resource_missing", "id")
    assert created["id"] in error["message"]


def test_test_mode_payment_method_is_not_found_with_a_live_key(live_api, tokenize):
    created = tokenize()
    response = live_api.get(f"/v1/payment_methods/{created['id']}")
    assert_error(response, 404, "resource_missing", "id")


def test_not_found_does_not_echo_a_card_number_passed_as_id(api):
    response = api.get(f"/v1/payment_methods/{VISA}")
    assert_error(response, 404, "resource_missing", "id")
    assert VISA not in response.content.decode()


def test_live_key_tokenizes_in_live_mode(live_api):
    response = live_api.post("/v1/payment_methods", card_payload(), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["livemode"] is True
    assert PaymentMethod.objects.get().livemode is True


def test_schema_describes_the_payment_method_endpoints(client, db):
    schema = json.loads(client.get("/v1/openapi.json").content)
    operations = {
        op["operationId"] for path in schema["paths"].values() for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }  # fmt: skip
    assert {"payment_methods_create", "payment_methods_retrieve"} <= operations
    create = schema["paths"]["/v1/payment_methods"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
