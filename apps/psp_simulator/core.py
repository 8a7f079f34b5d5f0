"""The request pipeline both dialects share: routing, faults, auth and idempotency.

Order, as a PSP behind a load balancer would apply it:
1. outage (the load balancer answers or drops the connection);
2. latency, then the "not processed" faults (503, 500, timeout);
3. authentication;
4. idempotency: replay, mismatch or in-flight answers come before any processing;
5. parameter validation (failures are not stored, as Stripe documents);
6. processing under the store lock (the slow-card delay happens before, outside the lock);
7. the "processed" faults: a 500 after storing, or the answer held back (response_lost).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.psp_simulator.faults import FaultDecision
from apps.psp_simulator.state import (
    STORE,
    ConnectorState,
    IdempotencyRecord,
    StoredResponse,
    stripe_id,
)
from apps.psp_simulator.web import BadRequest, Request, Response, drop_connection

logger = logging.getLogger("psp_simulator")


@dataclass
class Execution:
    """The part of an operation that reads or changes state; `run` is called under the lock."""

    run: Callable[[], Response]
    delay_s: float = 0.0  # processing time before `run` (slow issuer); the key stays in flight


@dataclass
class Context:
    connector: ConnectorState
    request: Request
    path: str  # below the dialect prefix, e.g. /v1/payment_intents
    request_id: str
    idempotency_key: str = ""


Handler = Callable[..., "Response | Execution"]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str  # fault scope: authorize | capture | cancel | refund | retrieve | payout
    handler: Handler
    mutating: bool = False
    public: bool = False  # browser pages (3-D Secure): no auth, no faults


@dataclass
class Dialect:
    """Error shapes and conventions that differ between Stripe and Adyen."""

    name: str
    routes: list[Route] = field(default_factory=list)

    def route(
        self,
        method: str,
        pattern: str,
        operation: str,
        *,
        mutating: bool = False,
        public: bool = False,
    ):
        def register(handler: Handler) -> Handler:
            compiled = re.compile(f"^{pattern}$")
            self.routes.append(Route(method, compiled, operation, handler, mutating, public))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found:
                path_known = True
                if route.method == method:
                    return route, found.groupdict(), True
        return None, {}, path_known

    # overridden per dialect
    def authenticate(self, request: Request) -> Response | None:
        raise NotImplementedError

    def error(self, kind: str, context: Context | None, **details: Any) -> Response:
        raise NotImplementedError

    def fingerprint(self, request: Request, path: str) -> str:
        raise NotImplementedError

    def idempotency_mismatch(
        self, key: str, record: IdempotencyRecord, path: str
    ) -> Response | None:
        raise NotImplementedError

    def decorate(self, response: Response, context: Context, replayed: bool) -> Response:
        return response


def serve(dialect: Dialect, connector_name: str, request: Request, path: str) -> Response:
    route, params, path_known = dialect.match(request.method, path)
    request_id = stripe_id("req")[:18]
    with STORE.lock:
        connector = STORE.connector(connector_name)
        connector.dialects_seen.add(dialect.name)
    context = Context(
        connector=connector,
        request=request,
        path=path,
        request_id=request_id,
        idempotency_key=request.header("idempotency-key"),
    )
    if route is None:
        kind = "method_not_allowed" if path_known else "route_not_found"
        return dialect.error(kind, context)
    if route.public:
        return _execute(context, route.handler(context, **params))

    with STORE.lock:
        decision = connector.faults.decide(route.operation)
        fault_config = connector.faults.config
    if decision.mode is not None:
        logger.info(
            "fault %s on %s %s (connector %s)", decision.mode, request.method, path, connector.name
        )

    if decision.mode == "outage":
        if fault_config.outage_mode == "drop" and drop_connection(request.environ):
            return Response(503, drop_connection=True)
        return dialect.error("unavailable", context)
    if decision.latency_s:
        time.sleep(decision.latency_s)
    if decision.mode == "error_503":
        return dialect.error("unavailable", context)
    if decision.mode == "error_500":
        return dialect.error("internal", context)
    if decision.mode == "rejected":
        return dialect.error("rejected", context, status=fault_config.rejected_status)
    if decision.mode == "timeout":
        time.sleep(decision.sleep_s)  # the caller has given up by now; nothing was processed
        return dialect.error("gateway_timeout", context)

    unauthorized = dialect.authenticate(request)
    if unauthorized is not None:
        return unauthorized

    try:
        if route.mutating:
            response = _run_idempotent(dialect, context, route, params, decision)
        else:
            response = dialect.decorate(
                _execute(context, route.handler(context, **params)), context, False
            )
    except BadRequest as exc:
        return dialect.error("bad_request", context, message=str(exc))

    if decision.mode == "processed_then_500":
        return dialect.error("internal", context)
    if decision.mode == "response_lost":
        time.sleep(decision.sleep_s)  # processed and stored; the caller times out meanwhile
    return response


def _execute(context: Context, outcome: Response | Execution) -> Response:
    if isinstance(outcome, Response):
        return outcome
    if outcome.delay_s:
        time.sleep(outcome.delay_s)
    with STORE.lock:
        return outcome.run()


def _run_idempotent(
    dialect: Dialect,
    context: Context,
    route: Route,
    params: dict[str, str],
    decision: FaultDecision,
) -> Response:
    connector = context.connector
    key = context.idempotency_key
    record: IdempotencyRecord | None = None
    if key:
        if len(key) > 255:
            return dialect.error("idempotency_key_too_long", context)
        fingerprint = dialect.fingerprint(context.request, context.path)
        with STORE.lock:
            existing = connector.idempotency.get(key)
            if existing is not None:
                if existing.in_flight:
                    return dialect.error("idempotency_in_flight", context)
                if existing.fingerprint != fingerprint:
                    mismatch = dialect.idempotency_mismatch(key, existing, context.path)
                    if mismatch is not None:
                        return dialect.decorate(mismatch, context, False)
                return _replay(dialect, context, existing)
            record = connector.idempotency[key] = IdempotencyRecord(fingerprint, context.path)

    try:
        outcome = route.handler(context, **params)
        if isinstance(outcome, Response):
            # parameter validation failed before anything ran: nothing is stored
            response, store = outcome, False
        else:
            response = _execute(context, outcome)
            store = response.store
    except BaseException:
        if record is not None:
            with STORE.lock:
                connector.idempotency.pop(key, None)
        raise

    response = dialect.decorate(response, context, False)
    if record is not None:
        with STORE.lock:
            if store:
                stored = response
                if (
                    decision.mode == "processed_then_500"
                    and connector.faults.config.processed_then_500_replays_error
                ):
                    stored = dialect.error("internal", context)
                record.response = StoredResponse(stored.status, stored.body, list(stored.headers))
                record.in_flight = False
            else:
                connector.idempotency.pop(key, None)
    return response


def _replay(dialect: Dialect, context: Context, record: IdempotencyRecord) -> Response:
    stored = record.response
    assert stored is not None
    response = Response(stored.status, stored.body, list(stored.headers))
    return dialect.decorate(response, context, True)
