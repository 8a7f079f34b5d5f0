"""The connector gateway: every PSP operation goes through it, with one policy per operation.

- An adapter exception in any operation becomes a normalized result with raw_code
  "adapter_exception" (unknown where money may have moved), never a 500, and the intent stays
  movable.
- A refund and an inquiry still go out while the connector's breaker is open for authorizations.
- A lost payout request is classified exactly as a lost payment request (one transport
  classification).
- No module but the gateway obtains an adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.connectors import gateway, health
from apps.connectors import services as connector_services
from apps.intents import services as intent_services
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.psp_adapters.adyen import AdyenAdapter
from apps.psp_adapters.contract import (
    CancelRequest,
    CaptureRequest,
    Outcome,
    PayoutRequest,
    ProviderOutcome,
    RefundRequest,
    RetrieveRequest,
)
from apps.psp_adapters.stripe import StripeAdapter
from tests.support.simulator import free_port

REPO = Path(__file__).resolve().parents[2]
ADAPTERS = {"stripe": StripeAdapter, "adyen": AdyenAdapter}


def _broken(*args, **kwargs):
    raise RuntimeError("adapter bug")


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_an_adapter_exception_in_every_operation_is_a_normalized_result(
    request, dialect, monkeypatch
):
    connector = request.getfixturevalue(f"{dialect}_connector")
    for method in ("authorize", "capture", "cancel", "refund", "retrieve", "probe"):
        monkeypatch.setattr(ADAPTERS[dialect], method, _broken)
    retrieve = RetrieveRequest(attempt_id="pa_x", idempotency_key="k", psp_reference="ref")
    results = {
        "capture": gateway.capture(
            connector=connector,
            request=CaptureRequest(
                psp_reference="ref", idempotency_key="k", amount=100, currency="eur"
            ),
        ),
        "cancel": gateway.cancel(
            connector=connector, request=CancelRequest(psp_reference="ref", idempotency_key="k")
        ),
        "refund": gateway.refund(
            connector=connector,
            request=RefundRequest(
                psp_reference="ref", idempotency_key="k", refund_id="re_x", amount=1, currency="eur"
            ),
        ),
        "action_result": gateway.action_result(connector=connector, request=retrieve),
        "inquiry": gateway.inquire(
            connector=connector,
            attempt_id="pa_x",
            idempotency_key="k",
            psp_reference="ref",
            attempt_age_seconds=10,
            original=lambda: pytest.fail("no re-send needed here"),
        )
        if dialect == "stripe"
        else None,
        "probe": gateway.probe(connector=connector),
    }
    for operation, result in results.items():
        if result is None:
            continue
        expected = Outcome.ERROR if operation == "probe" else Outcome.UNKNOWN
        assert (result.outcome, result.raw_code) == (expected, "adapter_exception"), operation


def test_an_adapter_exception_on_capture_leaves_the_intent_movable(
    api, pay, stripe_connector, monkeypatch
):
    intent_id = pay(amount=2200, capture_method="manual").json()["id"]
    monkeypatch.setattr(StripeAdapter, "capture", _broken)
    response = api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "processing"
    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert intent.pending_operation == "capture" and intent.pending_check_at is not None
    monkeypatch.undo()  # fixed: the sweep finishes it with the same key
    PaymentIntent.objects.filter(pk=intent.pk).update(pending_check_at=intent.created_at)
    intent_services.intents_resolve_stalled_operations()
    intent.refresh_from_db()
    assert intent.status == "succeeded"


def test_an_adapter_exception_on_the_3ds_return_is_not_a_500(pay, stripe_connector, monkeypatch):
    from rest_framework.test import APIClient

    body = pay(number="4000002500003155", return_url="https://shop.example/done").json()
    assert body["status"] == "requires_action"
    monkeypatch.setattr(StripeAdapter, "retrieve", _broken)
    shopper = APIClient().get(f"/v1/payment_intents/{body['id']}/return")
    assert shopper.status_code == 302
    assert "redirect_status=processing" in shopper["Location"]
    assert PaymentIntent.objects.get(public_id=body["id"]).status == "requires_action"


def test_refunds_and_inquiries_go_out_while_authorizations_are_short_circuited(
    api, pay, sim, connector_names, stripe_connector, system_actor
):
    paid = pay(amount=3000).json()
    assert paid["status"] == "succeeded"
    sim.faults(connector_names["stripe"], response_lost_rate=1.0, response_lost_delay_s=3)
    unknown = pay(amount=3100).json()
    assert unknown["status"] == "processing"
    sim.faults(connector_names["stripe"])
    connector_services.connector_breaker_force(
        connector=stripe_connector, mode="open", actor=system_actor
    )

    # new authorizations do not go there (routing skips an open breaker; one opened after the
    # decision is refused by the gateway without sending: tests/routing/test_failover.py)
    refused = pay(amount=3200)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "psp_unavailable"
    assert [c for c in sim.charges(connector_names["stripe"]) if c["amount"] == 3200] == []
    # operations on payments the connector already holds still reach it
    refund = api.post("/v1/refunds", {"payment_intent": paid["id"]}, format="json").json()
    assert refund["status"] == "succeeded"
    attempt = PaymentAttempt.objects.get(intent__public_id=unknown["id"])
    intent_services.attempt_inquire(attempt_id=attempt.pk)
    assert PaymentIntent.objects.get(public_id=unknown["id"]).status == "succeeded"
    assert health.breaker(stripe_connector.public_id).forced() == "open"


@pytest.mark.parametrize("fault", ["connection_refused", "read_timeout"])
def test_payouts_classify_a_lost_request_exactly_as_payments_do(
    stripe_connector, sim, connector_names, settings, fault, monkeypatch
):
    from apps.psp_adapters.contract import AuthorizeRequest, CardData

    if fault == "connection_refused":
        # nothing listens: nothing was sent, for either
        closed = f"http://127.0.0.1:{free_port()}"
        settings.SIMULATOR_URL = closed
        settings.PAYOUT_PROVIDER_URL = f"{closed}/stripe/payouts"
    else:
        # the request reached the PSP and the answer is late: maybe processed, for either
        sim.faults(connector_names["stripe"], latency_ms=1500)
        sim.faults("payouts-gateway-test", latency_ms=1500)
        settings.PAYOUT_PROVIDER_URL = f"{sim.base_url}/stripe/payouts-gateway-test"
        settings.PAYOUT_PROVIDER_READ_TIMEOUT_S = 0.3
        stripe_connector.read_timeout_ms = 300
    payment = gateway.authorize(
        connector=stripe_connector,
        request=AuthorizeRequest(
            attempt_id="pa_lost",
            idempotency_key="pa_lost-authorize",
            amount=100,
            currency="eur",
            capture=True,
            card=CardData(number="4242424242424242", exp_month=12, exp_year=2034, cvc="123"),
        ),
        facts={},
    )
    payout = gateway.payout_create(
        request=PayoutRequest(
            payout_id="po_lost",
            idempotency_key="po_lost",
            amount=100,
            currency="eur",
            destination="000123456789",
        )
    )
    expected = {
        "connection_refused": ((Outcome.ERROR, True), ProviderOutcome.RETRYABLE),
        "read_timeout": ((Outcome.UNKNOWN, False), ProviderOutcome.UNKNOWN),
    }[fault]
    assert (payment.outcome, payment.retryable_elsewhere) == expected[0]
    assert payout.outcome == expected[1]


_CALLERS_OF_GET_ADAPTER = """
import ast, json, pathlib, sys
repo = pathlib.Path(sys.argv[1])
callers = []
for path in (repo / "apps").rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "get_adapter":
                callers.append(str(path.relative_to(repo)))
print(json.dumps(callers))
"""


def test_only_the_gateway_obtains_an_adapter():
    """Beside the import-linter contract (only the connectors app may import the adapters):
    inside it, `get_adapter` is called by the gateway alone. Parsed in a process of its own:
    in CI, with other tests' server threads still running in this process, CPython 3.11.7's
    `ast.parse` failed with "SystemError: AST constructor recursion depth mismatch" (its depth
    check is not thread-safe, gh-106905)."""
    import json
    import subprocess
    import sys

    found = subprocess.run(
        [sys.executable, "-c", _CALLERS_OF_GET_ADAPTER, str(REPO)],
        capture_output=True,
        text=True,
        check=True,
    )
    callers = json.loads(found.stdout)
    assert set(callers) == {"apps/connectors/gateway.py"}, callers
