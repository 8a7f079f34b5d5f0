"""Base class for merchant API views: auth by API key, merchant scoping, idempotency."""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connection
from django.http import HttpResponse
from rest_framework.views import APIView

from apps.core.audit import Actor
from apps.core.errors import NotFoundError
from apps.core.idempotency import (
    IdempotencyClaim,
    IdempotencyReplay,
    ResultInTransaction,
    effects_tracking_start,
    effects_tracking_stop,
    idempotency_claim,
    idempotency_complete,
    idempotency_result_in_transaction,
    note_committed_writes,
    request_fingerprint,
    validate_key,
)

MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
REPLAY_HEADER = "Idempotent-Replayed"


_INT_COLUMN_MAX = 2**31 - 1


def check_path_ids(kwargs: dict) -> None:
    """Refuses, as the 404 any unknown id gets, a path id no object can have: control
    characters (NUL would fail in PostgreSQL, which cannot store it in text) or a number past
    the integer column's range."""
    for value in kwargs.values():
        if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise NotFoundError(f"No such object: {value[:100]!r}.", param="id")
        if isinstance(value, int) and value > _INT_COLUMN_MAX:
            raise NotFoundError(f"No such object: {value}.", param="id")


class _Replay(Exception):
    def __init__(self, replay: IdempotencyReplay):
        self.replay = replay


class MerchantApiView(APIView):
    """Every `/v1/` endpoint of a merchant derives from this.

    Mutating calls honour `Idempotency-Key`; the claim is taken after authentication (the scope
    needs the merchant) and after the body parsed (a malformed body stores nothing)."""

    _idempotency_claim: IdempotencyClaim | None = None
    _effects_token = None
    _result_in_transaction: ResultInTransaction | None = None

    def dispatch(self, request, *args, **kwargs):
        if request.method in MUTATING_METHODS and "Idempotency-Key" in request.headers:
            # records whether the operation began (a committed write), for a 5xx's fate
            with connection.execute_wrapper(note_committed_writes):
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    @property
    def merchant(self):
        return self.request.user

    @property
    def livemode(self) -> bool:
        return self.request.auth.livemode

    @property
    def actor(self) -> Actor:
        key = self.request.auth
        return Actor(
            type="api_key", id=key.display, merchant_id=key.merchant_id, livemode=key.livemode
        )

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        check_path_ids(kwargs)
        self._idempotency_claim = None
        key = request.headers.get("Idempotency-Key")
        if request.method in MUTATING_METHODS and key is not None:
            validate_key(key)
            fingerprint = request_fingerprint(
                method=request.method, path=request.path, payload=request.data
            )
            outcome = idempotency_claim(
                merchant_id=request.auth.merchant_id,
                livemode=request.auth.livemode,
                method=request.method,
                path=request.path,
                key=key,
                fingerprint=fingerprint,
                request_id=getattr(request._request, "request_id", ""),
            )
            if isinstance(outcome, IdempotencyReplay):
                raise _Replay(outcome)
            self._idempotency_claim = outcome
            self._effects_token = effects_tracking_start()

    @contextmanager
    def result_stored_by_service(self, render):
        """Around the service call of an idempotent request: the service may store the response
        in its last transaction (apps.core.idempotency.idempotency_result_statement), `render`
        giving it from the service's object. Yields a function that returns the response to
        send when it did (its exact stored bytes), else None."""
        with idempotency_result_in_transaction(self._idempotency_claim, render) as pending:
            self._result_in_transaction = pending

            def response() -> HttpResponse | None:
                if pending is None or pending.stored is None:
                    return None
                status, body = pending.stored
                return HttpResponse(body, status=status, content_type="application/json")

            yield response

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            response = HttpResponse(
                exc.replay.body, status=exc.replay.status, content_type="application/json"
            )
            response[REPLAY_HEADER] = "true"
            return response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        claim, self._idempotency_claim = self._idempotency_claim, None
        token, self._effects_token = self._effects_token, None
        pending, self._result_in_transaction = self._result_in_transaction, None
        if pending is not None and pending.stored is not None:
            # stored in the operation's own transaction, and these are its bytes
            if token is not None:
                effects_tracking_stop(token)
            return response
        if claim is not None:
            effects_began = effects_tracking_stop(token) if token is not None else True
            if hasattr(response, "render") and not response.is_rendered:
                response.render()
            idempotency_complete(
                claim=claim,
                status=response.status_code,
                body=response.content,
                effects_began=effects_began,
            )
        return response
