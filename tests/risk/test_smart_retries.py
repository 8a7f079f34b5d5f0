"""Smart retries after a decline: step-up to 3-D Secure on the same connector through the
simulator's 3DS page, do-not-retry codes never retried (the table, Mastercard's advice codes,
Visa's reattempt limit), the decision in the routing trace, the table edited by ops."""

from __future__ import annotations

import pytest

from apps.core.models import AuditLogEntry
from apps.risk import retries
from apps.risk.models import DeclineHandling
from tests.factories import StaffUserFactory
from tests.risk.test_sca import SHOP, _complete_3ds

STEP_UP_CARD = "4000009900000079"  # authentication_required unless 3DS is requested
MAC_03_CARD = "5100009900000018"  # Mastercard do_not_honor, merchant advice code 03


@pytest.fixture(autouse=True)
def _fresh_table(db):
    # the seed migration's rows (a flush by an earlier transactional test removes them)
    DeclineHandling.objects.bulk_create(
        [
            DeclineHandling(connector_type="*", code=code, decision=decision, updated_by="seed")
            for code, decision in retries.default_rows()
        ],
        ignore_conflicts=True,
    )
    retries.cache_clear()
    yield
    retries.cache_clear()


def _attempts(api, intent_id):
    return api.get(f"/v1/payment_intents/{intent_id}", {"expand[]": "attempts"}).json()


def test_step_up_after_authentication_required_completes_through_3ds(
    api, pay, sim, dialect_connector
):
    body = pay(number=STEP_UP_CARD, return_url=SHOP).json()
    assert body["status"] == "requires_action"
    first, second = _attempts(api, body["id"])["attempts"]
    assert (first["outcome"], first["decline_code"]) == ("soft_decline", "authentication_required")
    assert first["routing"]["retry"]["decision"] == "step_up_3ds"
    assert first["routing"]["retry"]["retried"] is True
    assert (second["connector"], second["three_d_secure"]["reason"]) == (
        first["connector"],
        "step_up",
    )
    assert second["routing"]["step_up"]["after"] == first["id"]

    _complete_3ds(body)
    intent = _attempts(api, body["id"])
    assert intent["status"] == "succeeded"
    assert intent["attempts"][1]["three_d_secure"]["result"] == "authenticated"
    charges = sim.charges(dialect_connector.simulator_account)
    assert [(c["status"], c["three_d_secure"]) for c in charges] == [
        ("declined", ""),
        ("captured" if charges[1]["status"] == "captured" else "authorized", "any"),
    ]


def test_a_failed_step_up_is_not_stepped_up_again(api, pay, stripe_connector):
    body = pay(number=STEP_UP_CARD, return_url=SHOP).json()
    _complete_3ds(body, "failed")
    intent = _attempts(api, body["id"])
    assert intent["status"] == "requires_payment_method"
    assert len(intent["attempts"]) == 2


def test_mastercard_do_not_retry_advice_is_never_retried(
    api, pay, sim, stripe_connector, adyen_connector
):
    response = pay(number=MAC_03_CARD)
    assert response.status_code == 402
    intent = _attempts(api, response.json()["error"]["payment_intent"]["id"])
    assert len(intent["attempts"]) == 1
    retry = intent["attempts"][0]["routing"]["retry"]
    assert (retry["decision"], retry["reason"], retry["retried"]) == (
        "do_not_retry",
        "mastercard_merchant_advice_code_03",
        False,
    )
    assert sim.charges(adyen_connector.simulator_account) == []


def test_the_table_decides_and_ops_edit_it_audited(
    api, pay, sim, client, staff_roles, merchant, stripe_connector, adyen_connector
):
    # seeded from the hard/soft table: a generic decline fails over to the next connector
    response = pay(number="4000000000000002")
    first = _attempts(api, response.json()["error"]["payment_intent"]["id"])
    assert len(first["attempts"]) == 2
    assert first["attempts"][0]["routing"]["retry"]["reason"] == "table:*/generic_decline"

    row = DeclineHandling.objects.get(connector_type="*", code="generic_decline")
    client.force_login(StaffUserFactory(role="ops", serves=[merchant]))
    response = client.post(
        f"/admin/risk/declinehandling/{row.pk}/change/",
        {"connector_type": "*", "code": "generic_decline", "decision": "do_not_retry", "note": "x"},
    )
    assert response.status_code == 302, response.content[:1500]
    assert AuditLogEntry.objects.filter(object_id="*/generic_decline").exists()
    retries.cache_clear()  # (or wait CACHE_SECONDS)

    adyen_before = len(sim.charges(adyen_connector.simulator_account))
    response = pay(number="4000000000000002")
    again = _attempts(api, response.json()["error"]["payment_intent"]["id"])
    assert len(again["attempts"]) == 1
    assert again["attempts"][0]["routing"]["retry"]["decision"] == "do_not_retry"
    assert len(sim.charges(adyen_connector.simulator_account)) == adyen_before


def test_visa_reattempt_limit_and_unknown_codes():
    common = {"connector_type": "stripe", "raw_code": "card_declined"}
    assert retries.decide(decline_code="insufficient_funds", card_brand="visa", **common) == {
        "decision": "retry_elsewhere",
        "reason": "table:*/insufficient_funds",
    }
    assert retries.decide(
        decline_code="insufficient_funds", card_brand="visa", declines_per_card_daily=15, **common
    ) == {"decision": "do_not_retry", "reason": "visa_reattempt_limit"}
    assert retries.decide(decline_code="brand_new_code", **common)["decision"] == (
        "retry_elsewhere"
    )
    assert retries.decide(decline_code="stolen_card", **common)["decision"] == "do_not_retry"
