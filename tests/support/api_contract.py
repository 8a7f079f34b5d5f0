"""What the API contract tests share: a merchant with one object of every kind (the "world"),
one well-formed request per documented operation, and a validator of real responses against
the OpenAPI document the server publishes.

Every request runs inside a savepoint that is rolled back afterwards, so each one meets the
same world (a delete or a revoke does not take an object away from the next request)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from django.db import transaction
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from apps.events import relay
from apps.events.models import Event, WebhookDelivery
from tests.factories import ApiKeyFactory, WebhookEndpointFactory, fund_available

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


# --------------------------------------------------------------------------- the document


def load_schema(client) -> dict:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def operations(schema: dict) -> dict[str, tuple[str, str, dict]]:
    """operationId -> (method, path template, operation)."""
    found = {}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                found[operation["operationId"]] = (method, path, operation)
    return found


def _json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema 2020-12: `nullable: true` becomes an anyOf with null."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


class ContractValidator:
    def __init__(self, schema: dict):
        self.schema = schema
        self.components = {"schemas": _json_schema(schema["components"]["schemas"])}

    def body_errors(self, body, openapi_schema: dict) -> list[str]:
        root = {**_json_schema(openapi_schema), "components": self.components}
        validator = Draft202012Validator(root)
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '<body>'}: {error.message[:300]}"
            for error in validator.iter_errors(body)
        ]

    def request_schema(self, operation: dict) -> dict | None:
        content = operation.get("requestBody", {}).get("content", {})
        return content.get("application/json", {}).get("schema")

    def response_problems(self, operation: dict, response) -> list[str]:
        """Why this real response is not what the document says (empty when it is)."""
        status = str(response.status_code)
        documented = operation["responses"].get(status)
        if documented is None:
            return [f"status {status} is not documented ({sorted(operation['responses'])})"]
        content_type = response.get("Content-Type", "").split(";")[0]
        content = documented.get("content")
        if not content:
            return [] if not response.content else [f"{status} documents no body"]
        if content_type not in content:
            return [f"{status} answered {content_type}, documented {sorted(content)}"]
        if content_type != "application/json":
            return []
        schema = content[content_type].get("schema")
        if schema is None:
            return []
        return self.body_errors(json.loads(response.content), schema)


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    ids: dict[str, str]
    secret_key: str
    publishable_key: str
    schema: dict
    clients: dict = field(default_factory=dict)

    def client(self, key: str | None = "secret") -> APIClient:
        if key not in self.clients:
            client = APIClient()
            client.raise_request_exception = False  # a 500 is an answer to assert on
            if key == "secret":
                client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret_key}")
            elif key == "publishable":
                client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.publishable_key}")
            self.clients[key] = client
        return self.clients[key]


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def build_world(*, merchant, other_merchant, system_actor, connector, schema) -> World:
    secret = ApiKeyFactory(merchant=merchant, kind="secret", actor=system_actor).raw_key
    publishable = ApiKeyFactory(merchant=merchant, kind="publishable", actor=system_actor).raw_key
    world = World(ids={}, secret_key=secret, publishable_key=publishable, schema=schema)
    api = world.client()
    ids = world.ids
    ids["connector_id"] = connector.public_id

    ids["endpoint_id"] = _ok(
        api.post(
            "/v1/webhook_endpoints",
            {"url": "https://example.com/hook", "enabled_events": ["*"]},
            format="json",
        )
    )["id"]
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    pm = _ok(api.post("/v1/payment_methods", {"type": "card", "card": card}, format="json"), 201)
    ids["payment_method_id"] = pm["id"]

    def intent(**extra) -> str:
        body = {"amount": 2000, "currency": "eur", **extra}
        return _ok(api.post("/v1/payment_intents", body, format="json"))["id"]

    ids["succeeded_intent"] = intent(payment_method=pm["id"], confirm=True)
    ids["capturable_intent"] = intent(
        payment_method=pm["id"], confirm=True, capture_method="manual"
    )
    ids["new_intent"] = intent(payment_method=pm["id"])  # not confirmed yet
    ids["refund_id"] = _ok(
        api.post(
            "/v1/refunds",
            {"payment_intent": ids["succeeded_intent"], "amount": 100},
            format="json",
        )
    )["id"]
    relay.outbox_relay()
    ids["event_id"] = Event.objects.filter(merchant=merchant).latest("pk").public_id
    ids["delivery_id"] = WebhookDelivery.objects.filter(endpoint__public_id=ids["endpoint_id"])[
        0
    ].public_id

    strategy = {"type": "priority", "connectors": [connector.public_id]}
    ids["profile_id"] = _ok(
        api.post(
            "/v1/routing_profiles",
            {"name": "main", "rules": [{"name": "all", "strategy": strategy}], "activate": True},
            format="json",
        )
    )["id"]
    ids["number"] = "1"
    ids["seller_id"] = _ok(
        api.post(
            "/v1/sellers",
            {
                "name": "Jenny's Shop",
                "country": "DE",
                "bank_account": {"currency": "eur", "account_number": "DE89370400440532013000"},
            },
            format="json",
        )
    )["id"]
    fund_available(merchant, 100_000)
    ids["payout_id"] = _ok(
        api.post("/v1/payouts", {"amount": 1000, "currency": "eur"}, format="json")
    )["id"]
    ids["key_id"] = _ok(api.post("/v1/api_keys", {"type": "secret"}, format="json"), 201)["id"]
    ids["value_list_id"] = _ok(
        api.post(
            "/v1/radar/value_lists",
            {"alias": "blocked_emails", "name": "Blocked", "item_type": "email"},
            format="json",
        )
    )["id"]
    ids["item_id"] = _ok(
        api.post(
            "/v1/radar/value_list_items",
            {"value_list": ids["value_list_id"], "value": "fraud@example.com"},
            format="json",
        )
    )["id"]
    ids["rule_id"] = _ok(
        api.post(
            "/v1/radar/rules", {"action": "review", "predicate": ":amount: > 50000"}, format="json"
        )
    )["id"]

    ids["dispute_id"] = _open_dispute(connector, intent(payment_method=pm["id"], confirm=True))

    ids["other_merchants_endpoint"] = WebhookEndpointFactory(
        merchant=other_merchant, actor=system_actor, url="https://example.com/other"
    ).public_id
    return world


def _open_dispute(connector, intent_id: str) -> str:
    """A dispute the simulator really holds (so closing it reaches the PSP), applied to us as
    its notification would be."""
    from django.conf import settings

    from apps.disputes.services import dispute_apply_notification
    from apps.intents.models import PaymentIntent
    from apps.psp_adapters.contract import DisputeNotice, WebhookEvent
    from apps.psp_simulator.control_client import SimulatorControl

    intent = PaymentIntent.objects.get(public_id=intent_id)
    opened = SimulatorControl(settings.SIMULATOR_URL).open_dispute(
        connector.simulator_account, intent.psp_reference
    )
    outcome = dispute_apply_notification(
        connector_id=connector.pk,
        event=WebhookEvent(
            psp_event_id=f"evt_{opened['id']}",
            event_type="chargeback",
            psp_reference=intent.psp_reference,
            success=True,
            amount=opened["amount"],
            currency="eur",
            dispute=DisputeNotice(
                psp_dispute_id=opened["id"],
                raw_status="needs_response",
                raw_event="charge.dispute.created",
                stage="chargeback",
                status="needs_response",
                reason="fraudulent",
                evidence_due_by=opened["due_by"],
            ),
        ),
    )
    return outcome.object


# --------------------------------------------------------------------------- requests


@dataclass
class Call:
    operation_id: str
    path_params: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    body: object = None
    raw_body: str | bytes | None = None
    key: str | None = "secret"
    headers: dict = field(default_factory=dict)


def good_calls(world: World) -> dict[str, Call]:
    """One well-formed request per operation, expected to succeed (2xx/3xx)."""
    i = world.ids
    connector_body = {
        "name": "second",
        "connector_type": "adyen",
        "credentials": {
            "api_key": "AQE_x",
            "merchant_account": "Shop",
            "hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
        },
        "supported_currencies": ["eur"],
    }
    rules = [
        {
            "name": "all",
            "strategy": {"type": "priority", "connectors": [i["connector_id"]]},
        }
    ]
    card = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    calls = [
        Call("account_retrieve"),
        Call("account_update", body={"name": "Renamed", "metadata": {"k": "v"}}),
        Call("api_keys_list", query={"limit": 2}),
        Call("api_keys_create", body={"type": "publishable", "name": "checkout"}),
        Call("api_keys_revoke", {"key_id": i["key_id"]}),
        Call("api_keys_roll", {"key_id": i["key_id"]}, body={"expires_in": 60}),
        Call("balance_retrieve"),
        Call("balance_transactions_list", query={"currency": "eur", "created[gte]": 0}),
        Call("connectors_list"),
        Call("connectors_create", body=connector_body),
        Call("connectors_retrieve", {"connector_id": i["connector_id"]}),
        Call("connectors_update", {"connector_id": i["connector_id"]}, body={"priority": 5}),
        Call("disputes_list", query={"status": "needs_response", "created[gte]": 0}),
        Call("disputes_retrieve", {"dispute_id": i["dispute_id"]}),
        Call(
            "disputes_update",
            {"dispute_id": i["dispute_id"]},
            body={"evidence": {"product_description": "A lamp", "receipt": None}},
        ),
        Call("disputes_close", {"dispute_id": i["dispute_id"]}, body={}),
        Call(
            "files_create",
            body={
                "purpose": "dispute_evidence",
                "file": "iVBORw0KGgoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "filename": "receipt.png",
            },
        ),
        Call("events_list", query={"type": "payment_intent.*", "created[gt]": 0}),
        Call("events_retrieve", {"event_id": i["event_id"]}),
        Call("payment_intents_list", query={"limit": 3, "expand[]": "attempts"}),
        Call(
            "payment_intents_create",
            body={
                "amount": 1000,
                "currency": "eur",
                "metadata": {"order": "1"},
                "description": "d",
            },
        ),
        Call("payment_intents_retrieve", {"intent_id": i["succeeded_intent"]}),
        Call(
            "payment_intents_cancel",
            {"intent_id": i["new_intent"]},
            body={"cancellation_reason": "requested_by_customer"},
        ),
        Call(
            "payment_intents_capture",
            {"intent_id": i["capturable_intent"]},
            body={"amount_to_capture": 1500},
        ),
        Call(
            "payment_intents_confirm",
            {"intent_id": i["new_intent"]},
            body={"payment_method": i["payment_method_id"]},
        ),
        Call("payment_intents_return", {"intent_id": i["succeeded_intent"]}, key=None),
        Call("payment_methods_create", body={"type": "card", "card": card}, key="publishable"),
        Call("payment_methods_retrieve", {"payment_method_id": i["payment_method_id"]}),
        Call("payouts_list", query={"status": "pending", "created[lte]": 253402300799}),
        Call("payouts_create", body={"amount": 500, "currency": "eur", "description": "x"}),
        Call("payouts_retrieve", {"payout_id": i["payout_id"]}),
        Call("payouts_cancel", {"payout_id": i["payout_id"]}),
        Call("refunds_list", query={"payment_intent": i["succeeded_intent"]}),
        Call(
            "refunds_create",
            body={"payment_intent": i["succeeded_intent"], "amount": 50, "reason": "duplicate"},
        ),
        Call("refunds_retrieve", {"refund_id": i["refund_id"]}),
        Call("routing_profiles_list"),
        Call("routing_profiles_create", body={"name": "second", "rules": rules}),
        Call("routing_profiles_retrieve", {"profile_id": i["profile_id"]}),
        Call("routing_profiles_update", {"profile_id": i["profile_id"]}, body={"name": "x"}),
        Call("routing_profiles_activate", {"profile_id": i["profile_id"]}, body={"version": 1}),
        Call("routing_profiles_deactivate", {"profile_id": i["profile_id"]}, body={}),
        Call("routing_profile_versions_list", {"profile_id": i["profile_id"]}),
        Call(
            "routing_profile_versions_create",
            {"profile_id": i["profile_id"]},
            body={"rules": rules, "note": "n"},
        ),
        Call(
            "routing_profile_versions_retrieve",
            {"profile_id": i["profile_id"], "number": i["number"]},
        ),
        Call("sellers_list"),
        Call(
            "sellers_create",
            body={
                "name": "Second",
                "country": "DE",
                "email": "s@example.com",
                "payout_schedule": {"interval": "weekly", "weekly_anchor": "monday"},
                "bank_account": {"currency": "eur", "account_number": "DE89370400440532013000"},
                "metadata": {"a": "b"},
            },
        ),
        Call("sellers_retrieve", {"seller_id": i["seller_id"]}),
        Call("webhook_endpoints_list"),
        Call(
            "webhook_endpoints_create",
            body={
                "url": "https://example.com/second",
                "enabled_events": ["payment_intent.*"],
                "description": "d",
            },
        ),
        Call("webhook_endpoints_retrieve", {"endpoint_id": i["endpoint_id"]}),
        Call(
            "webhook_endpoints_update",
            {"endpoint_id": i["endpoint_id"]},
            body={"disabled": True, "metadata": {"a": "b"}},
        ),
        Call("webhook_endpoints_delete", {"endpoint_id": i["endpoint_id"]}),
        Call("webhook_endpoints_roll_secret", {"endpoint_id": i["endpoint_id"]}, body={}),
        Call("webhook_endpoints_replay", {"endpoint_id": i["endpoint_id"]}, body={"since": 0}),
        Call("webhook_deliveries_list", {"endpoint_id": i["endpoint_id"]}),
        Call(
            "webhook_deliveries_replay",
            {"endpoint_id": i["endpoint_id"], "delivery_id": i["delivery_id"]},
        ),
    ]
    calls += [
        Call("radar_value_lists_list", query={"alias": "blocked_emails"}),
        Call(
            "radar_value_lists_create",
            body={"alias": "vip_bins", "name": "VIP", "item_type": "card_bin", "metadata": {}},
        ),
        Call("radar_value_lists_retrieve", {"value_list_id": i["value_list_id"]}),
        Call("radar_value_lists_delete", {"value_list_id": i["value_list_id"]}),
        Call("radar_value_list_items_list", query={"value_list": i["value_list_id"]}),
        Call(
            "radar_value_list_items_create",
            body={"value_list": i["value_list_id"], "value": "other@example.com"},
        ),
        Call("radar_value_list_items_retrieve", {"item_id": i["item_id"]}),
        Call("radar_value_list_items_delete", {"item_id": i["item_id"]}),
        Call("radar_rules_list", query={"enabled": "true"}),
        Call(
            "radar_rules_create",
            body={"action": "block", "predicate": ":email: in @blocked_emails", "enabled": False},
        ),
        Call("radar_rules_retrieve", {"rule_id": i["rule_id"]}),
        Call("radar_rules_update", {"rule_id": i["rule_id"]}, body={"enabled": False}),
        Call("radar_rules_disable", {"rule_id": i["rule_id"]}, body={}),
        Call("radar_rules_test", {"rule_id": i["rule_id"]}, body={"days": 7}),
    ]
    return {call.operation_id: call for call in calls}


def send(world: World, call: Call):
    """Sends `call` inside a savepoint rolled back afterwards; returns the response."""
    method, template, _ = operations(world.schema)[call.operation_id]
    path = template
    for name, value in call.path_params.items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    if call.query:
        path += "?" + urlencode(call.query, doseq=True)
    if call.raw_body is not None:
        data, content_type = call.raw_body, "application/json"
    elif call.body is not None:
        data, content_type = json.dumps(call.body), "application/json"
    else:
        data, content_type = None, None
    client = world.client(call.key)
    kwargs = {"content_type": content_type} if content_type else {}
    savepoint = transaction.savepoint()
    try:
        return getattr(client, method)(path, data, **kwargs, **call.headers)
    finally:
        transaction.savepoint_rollback(savepoint)


def with_body(call: Call, body) -> Call:
    changed = copy.copy(call)
    changed.body, changed.raw_body = body, None
    return changed
