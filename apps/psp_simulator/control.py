"""The control API under `/_sim/…`: faults, webhook targets, settings and what really happened.

It has no authentication: the simulator binds to 127.0.0.1 and is a test tool, never a PSP.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from apps.psp_simulator import cards
from apps.psp_simulator.faults import FaultConfig, InvalidFaults
from apps.psp_simulator.state import DISPATCHER, STORE, ConnectorSettings
from apps.psp_simulator.web import Request, Response, json_response
from apps.psp_simulator.webhooks import InvalidWebhookConfig, WebhookConfig

CONNECTOR_NAME = r"(?P<name>[A-Za-z0-9_.\-]+)"

Route = tuple[str, re.Pattern[str], Callable[..., Response]]
ROUTES: list[Route] = []


def route(method: str, pattern: str):
    def register(handler: Callable[..., Response]) -> Callable[..., Response]:
        ROUTES.append((method, re.compile(f"^/_sim{pattern}$"), handler))
        return handler

    return register


def dispatch(request: Request) -> Response:
    path_known = False
    for method, pattern, handler in ROUTES:
        found = pattern.match(request.path)
        if not found:
            continue
        path_known = True
        if method == request.method:
            return handler(request, **found.groupdict())
    if path_known:
        return _problem(405, f"{request.method} is not allowed on {request.path}")
    return _problem(404, f"no control endpoint {request.path}")


def _problem(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def _json_object(request: Request) -> dict[str, Any] | Response:
    try:
        body = request.json()
    except ValueError as exc:
        return _problem(400, str(exc))
    if not isinstance(body, dict):
        return _problem(400, "the body must be a JSON object")
    return body


@route("GET", "/health")
def health(request: Request) -> Response:
    return json_response(200, {"status": "ok"})


@route("GET", "/cards")
def card_table(request: Request) -> Response:
    return json_response(
        200,
        {
            "data": [
                {
                    "number": card.number,
                    "brand": card.brand,
                    "outcome": card.outcome,
                    "decline_code": card.decline_code or None,
                    "stripe_code": card.stripe_code if card.outcome == cards.DECLINE else None,
                    "adyen_result_code": card.adyen_result_code
                    if card.outcome == cards.DECLINE
                    else None,
                    "adyen_refusal_reason_code": card.adyen_refusal_code or None,
                    "adyen_refusal_reason": card.adyen_refusal_reason or None,
                    "source": card.source,
                    "description": card.description,
                }
                for card in cards.TEST_CARDS
            ]
        },
    )


@route("POST", "/reset")
def reset(request: Request) -> Response:
    with STORE.lock:
        STORE.reset()
    return json_response(200, {"reset": True})


@route("GET", "/connectors")
def connector_list(request: Request) -> Response:
    with STORE.lock:
        data = [state.summary() for state in STORE.connectors.values()]
    return json_response(200, {"data": data})


@route("GET", f"/connectors/{CONNECTOR_NAME}")
def connector_detail(request: Request, name: str) -> Response:
    with STORE.lock:
        return json_response(200, STORE.connector(name).summary())


@route("DELETE", f"/connectors/{CONNECTOR_NAME}")
def connector_forget(request: Request, name: str) -> Response:
    with STORE.lock:
        forgotten = STORE.forget(name)
    return json_response(200, {"name": name, "deleted": forgotten})


# -- faults -------------------------------------------------------------------------------------


def _faults_view(name: str) -> dict[str, Any]:
    injector = STORE.connector(name).faults
    return {"connector": name, "faults": injector.config.to_dict(), "injected": injector.injected}


@route("GET", f"/connectors/{CONNECTOR_NAME}/faults")
def faults_read(request: Request, name: str) -> Response:
    with STORE.lock:
        return json_response(200, _faults_view(name))


@route("PUT", f"/connectors/{CONNECTOR_NAME}/faults")
def faults_replace(request: Request, name: str) -> Response:
    return _faults_write(request, name, merge=False)


@route("PATCH", f"/connectors/{CONNECTOR_NAME}/faults")
def faults_update(request: Request, name: str) -> Response:
    return _faults_write(request, name, merge=True)


def _faults_write(request: Request, name: str, *, merge: bool) -> Response:
    body = _json_object(request)
    if isinstance(body, Response):
        return body
    with STORE.lock:
        injector = STORE.connector(name).faults
        try:
            config = FaultConfig.from_dict(body, base=injector.config if merge else None)
        except (InvalidFaults, TypeError) as exc:
            return _problem(400, str(exc))
        injector.configure(config)
        return json_response(200, _faults_view(name))


@route("DELETE", f"/connectors/{CONNECTOR_NAME}/faults")
def faults_reset(request: Request, name: str) -> Response:
    with STORE.lock:
        STORE.connector(name).faults.configure(FaultConfig())
        return json_response(200, _faults_view(name))


# -- webhook target ------------------------------------------------------------------------------


def _webhook_view(name: str) -> dict[str, Any]:
    config = STORE.connector(name).webhooks.config
    return {"connector": name, "webhook": config.to_dict() if config else None}


@route("GET", f"/connectors/{CONNECTOR_NAME}/webhook")
def webhook_read(request: Request, name: str) -> Response:
    with STORE.lock:
        return json_response(200, _webhook_view(name))


@route("PUT", f"/connectors/{CONNECTOR_NAME}/webhook")
def webhook_replace(request: Request, name: str) -> Response:
    return _webhook_write(request, name, merge=False)


@route("PATCH", f"/connectors/{CONNECTOR_NAME}/webhook")
def webhook_update(request: Request, name: str) -> Response:
    return _webhook_write(request, name, merge=True)


def _webhook_write(request: Request, name: str, *, merge: bool) -> Response:
    body = _json_object(request)
    if isinstance(body, Response):
        return body
    with STORE.lock:
        hooks = STORE.connector(name).webhooks
        try:
            config = WebhookConfig.from_dict(body, base=hooks.config if merge else None)
        except (InvalidWebhookConfig, TypeError, ValueError) as exc:
            return _problem(400, str(exc))
        hooks.configure(config)
        return json_response(200, _webhook_view(name))


@route("DELETE", f"/connectors/{CONNECTOR_NAME}/webhook")
def webhook_unregister(request: Request, name: str) -> Response:
    with STORE.lock:
        STORE.connector(name).webhooks.configure(None)
        return json_response(200, _webhook_view(name))


# -- settings ------------------------------------------------------------------------------------


@route("GET", f"/connectors/{CONNECTOR_NAME}/settings")
def settings_read(request: Request, name: str) -> Response:
    with STORE.lock:
        return json_response(200, STORE.connector(name).settings.to_dict())


@route("PATCH", f"/connectors/{CONNECTOR_NAME}/settings")
def settings_update(request: Request, name: str) -> Response:
    body = _json_object(request)
    if isinstance(body, Response):
        return body
    with STORE.lock:
        connector = STORE.connector(name)
        merged = {**connector.settings.to_dict(), **body}
        try:
            settings = ConnectorSettings(**merged)
        except TypeError as exc:
            return _problem(400, str(exc))
        if any(not isinstance(v, (int, float)) or v < 0 for v in asdict(settings).values()):
            return _problem(400, "settings are durations in ms and must be numbers >= 0")
        connector.settings = settings
        return json_response(200, settings.to_dict())


@route("DELETE", f"/connectors/{CONNECTOR_NAME}/settings")
def settings_reset(request: Request, name: str) -> Response:
    with STORE.lock:
        connector = STORE.connector(name)
        connector.settings = ConnectorSettings()
        return json_response(200, connector.settings.to_dict())


# -- what really happened --------------------------------------------------------------------------


def _selected_connectors(request: Request):
    name = request.query_value("connector")
    if name:
        state = STORE.connectors.get(name)
        return [state] if state else []
    return list(STORE.connectors.values())


def _filtered(items, request: Request, fields: tuple[str, ...]):
    for item in items:
        if all(
            not request.query_value(field) or str(item.get(field)) == request.query_value(field)
            for field in fields
        ):
            yield item


@route("GET", "/charges")
def charge_list(request: Request) -> Response:
    """Every authorisation that reached the issuer, oldest first; filter with
    `connector`, `reference`, `status` (authorized | captured | declined | canceled),
    `idempotency_key`, `dialect`."""
    with STORE.lock:
        items = [c.to_dict() for s in _selected_connectors(request) for c in s.charges.values()]
    data = list(_filtered(items, request, ("reference", "status", "idempotency_key", "dialect")))
    return json_response(200, {"data": data, "count": len(data)})


@route("GET", "/refunds")
def refund_list(request: Request) -> Response:
    with STORE.lock:
        items = [r.to_dict() for s in _selected_connectors(request) for r in s.refunds.values()]
    data = list(_filtered(items, request, ("payment_id", "status", "reference")))
    return json_response(200, {"data": data, "count": len(data)})


@route("GET", "/payouts")
def payout_list(request: Request) -> Response:
    from apps.psp_simulator.stripe_api import render_payout

    with STORE.lock:
        items = [
            {**render_payout(p), "connector": p.connector}
            for s in _selected_connectors(request)
            for p in s.payouts.values()
        ]
    data = list(_filtered(items, request, ("status",)))
    return json_response(200, {"data": data, "count": len(data)})


@route("GET", "/webhooks")
def delivery_list(request: Request) -> Response:
    """Webhook deliveries in the order they were queued; `sequence` is the order sent."""
    with STORE.lock:
        deliveries = [d for s in _selected_connectors(request) for d in s.webhooks.log]
    items = [d.to_dict() for d in deliveries]
    data = list(_filtered(items, request, ("status", "event_type")))
    return json_response(200, {"data": data, "count": len(data)})


@route("DELETE", "/webhooks")
def delivery_log_clear(request: Request) -> Response:
    with STORE.lock:
        for state in _selected_connectors(request):
            state.webhooks.log.clear()
    return json_response(200, {"cleared": True})


@route("POST", "/webhooks/flush")
def delivery_flush(request: Request) -> Response:
    """Release held reorder windows now instead of waiting for `reorder_max_hold_ms`."""
    with STORE.lock:
        states = _selected_connectors(request)
    released = sum(DISPATCHER.flush(state.webhooks) for state in states)
    return json_response(200, {"released": released})


# -- disputes (apps/psp_simulator/disputes.py) ----------------------------------------------------


@route("GET", "/disputes")
def dispute_list(request: Request) -> Response:
    with STORE.lock:
        items = [d.to_dict() for s in _selected_connectors(request) for d in s.disputes.values()]
    data = list(_filtered(items, request, ("payment_id", "status", "stage")))
    return json_response(200, {"data": data, "count": len(data)})


@route("POST", "/disputes")
def dispute_open(request: Request) -> Response:
    """Opens a dispute on a captured payment, in the payment's dialect:
    {"connector", "payment_id" (pi_… / pspReference), "reason"?, "amount"?, "inquiry"?,
    "due_in_days"?, "fee_returned_on_win"? (Stripe: the reinstatement returns the fee)}."""
    from apps.psp_simulator import disputes

    body = _json_object(request)
    if isinstance(body, Response):
        return body
    known = {"connector", "payment_id", "reason", "amount", "inquiry", "due_in_days"}
    unknown = sorted(set(body) - known - {"fee_returned_on_win"})
    if unknown:
        return _problem(400, f"unknown fields: {', '.join(unknown)}")
    due = body.get("due_in_days", disputes.DEFAULT_DUE_DAYS)
    if not isinstance(due, (int, float)) or isinstance(due, bool) or due < 0:
        return _problem(400, "due_in_days must be a number >= 0")
    with STORE.lock:
        state = STORE.connectors.get(str(body.get("connector") or ""))
        payment = state.payments.get(str(body.get("payment_id") or "")) if state else None
        if payment is None:
            return _problem(404, "no such payment on that connector")
        try:
            dispute = disputes.open_dispute(
                state,
                payment,
                reason=body.get("reason") or "fraudulent",
                amount=body.get("amount"),
                inquiry=bool(body.get("inquiry")),
                due_in_days=due,
                fee_returned_on_win=bool(body.get("fee_returned_on_win")),
            )
        except disputes.DisputeError as exc:
            return _problem(400, str(exc))
        return json_response(200, dispute.to_dict())


@route("POST", r"/disputes/(?P<dispute_id>[A-Za-z0-9_]+)/(?P<action>[a-z_]+)")
def dispute_action(request: Request, dispute_id: str, action: str) -> Response:
    """The issuer's side: escalate (inquiry -> chargeback), second_chargeback (Adyen), expire
    (the due date passed unanswered), win, lose."""
    from apps.psp_simulator import disputes

    with STORE.lock:
        found = disputes.find(dispute_id)
        if found is None:
            return _problem(404, f"no dispute {dispute_id}")
        state, dispute = found
        actions = {
            "escalate": lambda: disputes.escalate(state, dispute),
            "second_chargeback": lambda: disputes.second_chargeback(state, dispute),
            "expire": lambda: disputes.expire(state, dispute),
            "win": lambda: disputes.decide(state, dispute, "won"),
            "lose": lambda: disputes.decide(state, dispute, "lost"),
        }
        if action not in actions:
            return _problem(404, f"unknown action {action}: {', '.join(sorted(actions))}")
        try:
            actions[action]()
        except disputes.DisputeError as exc:
            return _problem(409, str(exc))
        return json_response(200, dispute.to_dict())
