"""The raw-SQL floor of the payment path (`make bench` scenario F): what Django + DRF cost with
a payment's writes and nothing else, on the same machine, database and load generator as the
platform, so every platform figure can be given as a ratio to it.

One endpoint, `POST /v1/payment_intents`, answers like the platform's create+confirm
(`{"id": "pi_…", "status": "succeeded"}`) after the same shape of writes in two transactions:

    tx 1: INSERT the intent, INSERT its attempt           (before the PSP call)
    tx 2: UPDATE the attempt, UPDATE the intent, INSERT two ledger entries, INSERT an outbox row

with a PSP that answers at once (scenario A's simulator latency, 0 ms). No authentication, no
idempotency record, no audit row, no routing, no vault: the platform does all of that, and the
ratio says what it costs. `POST /v1/payment_methods` answers a fixed token so the load
generator runs unchanged. The tables are the floor's own (`bench_floor_*`, created at start),
in the bench database.

Served by its own gunicorn (same worker and thread counts as the platform's), with
`DJANGO_SETTINGS_MODULE=bench.floor_settings`; this module is its URLconf.
"""

from __future__ import annotations

import os
import secrets

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_floor_intent (
    id bigserial PRIMARY KEY, public_id text NOT NULL UNIQUE, amount bigint NOT NULL,
    currency text NOT NULL, status text NOT NULL, order_id text,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bench_floor_attempt (
    id bigserial PRIMARY KEY, intent_id bigint NOT NULL REFERENCES bench_floor_intent,
    outcome text NOT NULL, psp_reference text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bench_floor_entry (
    id bigserial PRIMARY KEY, intent_id bigint NOT NULL, account text NOT NULL,
    amount bigint NOT NULL, currency text NOT NULL);
CREATE TABLE IF NOT EXISTS bench_floor_outbox (
    id bigserial PRIMARY KEY, intent_id bigint NOT NULL, event_type text NOT NULL,
    payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
"""


def _views():
    from django.db import connection, transaction
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Pay(APIView):
        def post(self, request):
            body = request.data
            amount, currency = int(body["amount"]), str(body["currency"])
            public_id = "pi_" + secrets.token_urlsafe(18)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "WITH i AS (INSERT INTO bench_floor_intent "
                    "(public_id, amount, currency, status, order_id) "
                    "VALUES (%s, %s, %s, 'processing', %s) RETURNING id) "
                    "INSERT INTO bench_floor_attempt (intent_id, outcome) "
                    "SELECT id, 'pending' FROM i RETURNING intent_id, id",
                    [public_id, amount, currency, body.get("order_id")],
                )
                intent_id, attempt_id = cursor.fetchone()
            psp_reference = "ch_" + secrets.token_hex(12)  # the PSP answers at once
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE bench_floor_attempt SET outcome = 'succeeded', psp_reference = %s "
                    "WHERE id = %s",
                    [psp_reference, attempt_id],
                )
                cursor.execute(
                    "UPDATE bench_floor_intent SET status = 'succeeded', updated_at = now() "
                    "WHERE id = %s",
                    [intent_id],
                )
                cursor.execute(
                    "INSERT INTO bench_floor_entry (intent_id, account, amount, currency) "
                    "VALUES (%s, 'psp_receivable', %s, %s), (%s, 'merchant_pending', %s, %s)",
                    [intent_id, amount, currency, intent_id, -amount, currency],
                )
                cursor.execute(
                    "INSERT INTO bench_floor_outbox (intent_id, event_type, payload) "
                    "VALUES (%s, 'payment_intent.succeeded', %s::jsonb)",
                    [intent_id, f'{{"id": "{public_id}"}}'],
                )
            return Response({"id": public_id, "object": "payment_intent", "status": "succeeded"})

    class Tokenize(APIView):
        def post(self, request):
            return Response({"id": "pm_floor", "object": "payment_method"}, status=201)

    return Pay, Tokenize


def _urls():
    from django.http import HttpResponse
    from django.urls import path

    pay, tokenize = _views()
    return [
        path("v1/payment_intents", pay.as_view()),
        path("v1/payment_methods", tokenize.as_view()),
        path("readyz", lambda request: HttpResponse("ok")),
    ]


def create_tables() -> None:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(SCHEMA)


def __getattr__(name: str):
    # the URLconf's patterns are built on first use, after Django is set up
    if name == "urlpatterns":
        patterns = _urls()
        globals()["urlpatterns"] = patterns
        return patterns
    raise AttributeError(name)
