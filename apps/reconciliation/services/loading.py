"""Loading one report, set-based and all or nothing (issue 14, items 2-4).

In one database transaction:
1. the stored raw file is streamed through the connector's parser straight into `COPY` into a
   temporary staging table (never a row at a time, never the whole file in memory); the first
   line that does not parse raises `ReportParseError` and the transaction rolls back: nothing of
   the file is applied;
2. what we expect the PSP to settle (our captures and refunds, from the intents app's selector,
   with the fee the ledger estimated at capture) becomes a second temporary table;
3. one `INSERT … SELECT` matches every staged line (by PSP reference, then modification
   reference, then merchant reference), decides its state and stores it with its match key;
4. discrepancies for the report's lines and its payouts are inserted from those rows;
5. the matched lines are posted to the ledger, one journal per currency (`posting.py`).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection

from apps.connectors import gateway
from apps.disputes import selectors as dispute_selectors
from apps.intents import selectors as intent_selectors
from apps.ledger import selectors as ledger_selectors
from apps.reconciliation.models import LineState, ReconciliationProfile, SettlementReport
from apps.reconciliation.services import storage

STAGING_COLUMNS = (
    "line_number",
    "record_type",
    "psp_reference",
    "modification_reference",
    "merchant_reference",
    "currency",
    "gross",
    "fee",
    "net",
    "batch",
    "payout_id",
    "settled_on",
)

CREATE_STAGING = """
CREATE TEMP TABLE recon_staging (
    line_number integer NOT NULL,
    record_type text NOT NULL,
    psp_reference text NOT NULL,
    modification_reference text NOT NULL,
    merchant_reference text NOT NULL,
    currency text NOT NULL,
    gross bigint NOT NULL,
    fee bigint NOT NULL,
    net bigint NOT NULL,
    batch text NOT NULL,
    payout_id text NOT NULL,
    settled_on date
) ON COMMIT DROP"""

CREATE_EXPECTED = """
CREATE TEMP TABLE recon_expected ON COMMIT DROP AS
SELECT row_number() OVER () AS eid,
       e.x_kind AS kind, e.x_object_id AS object_id, e.x_public_id AS public_id,
       e.x_psp_reference AS psp_reference,
       CASE WHEN e.x_kind = 'capture' THEN e.x_psp_reference
            ELSE e.x_modification_reference END AS mod_key,
       CASE WHEN e.x_kind = 'capture' THEN e.x_psp_reference
            WHEN e.x_kind IN ('chargeback', 'reversal')
                THEN e.x_psp_reference || ' ' || e.x_modification_reference END AS psp_key,
       e.x_merchant_reference AS merchant_reference,
       e.x_amount AS amount, e.x_currency AS currency, e.x_occurred_at AS occurred_at,
       COALESCE(e.x_fee, f.fee_estimate, 0) AS fee_estimate,
       COALESCE(f.pending_credit, 0) AS pending_credit,
       EXISTS (
           SELECT 1 FROM reconciliation_line l
           WHERE l.expected_kind = e.x_kind AND l.expected_id = e.x_object_id
             AND l.state IN ('matched', 'mismatched', 'resolved')
       ) AS matched_before
FROM ({expectations}) e
LEFT JOIN ({figures}) f ON e.x_kind = 'capture' AND f.figure_source = e.x_public_id"""

# the expected side of a line's record type
# (a chargeback line is a withdrawal when it takes money, a reversal when it gives it back)
_KIND = (
    "(CASE WHEN s.record_type = 'charge' THEN 'capture' WHEN s.record_type = 'refund' THEN "
    "'refund' WHEN s.record_type = 'chargeback' AND s.gross < 0 THEN 'chargeback' "
    "WHEN s.record_type = 'chargeback' THEN 'reversal' END)"
)
# the line's PSP-reference key: a capture by its payment's reference; a chargeback by the
# payment's reference and the dispute's (a payment may be disputed more than once)
_PSP_KEY = (
    "(CASE WHEN s.record_type = 'charge' THEN s.psp_reference "
    "WHEN s.record_type = 'chargeback' THEN s.psp_reference || ' ' || s.modification_reference "
    "END)"
)

MATCH = """
INSERT INTO reconciliation_line (
    report_id, run_id, connector_id, line_number, record_type, psp_reference,
    modification_reference, merchant_reference, currency, gross, fee, net, batch, payout_id,
    settled_on, state, match_key, expected_kind, expected_id, expected_public_id,
    expected_amount, expected_currency, agreed_fee, estimated_fee, pending_credit, merchant_id,
    livemode, late, journal_key)
SELECT %(report)s, %(run)s, %(connector)s, x.line_number, x.record_type, x.psp_reference,
       x.modification_reference, x.merchant_reference, x.currency, x.gross, x.fee, x.net,
       x.batch, x.payout_id, x.settled_on, x.state,
       CASE WHEN x.eid IS NULL THEN '' ELSE x.match_key END,
       COALESCE(x.kind, ''), x.object_id, COALESCE(x.public_id, ''), x.amount,
       COALESCE(x.e_currency, ''), x.agreed, COALESCE(x.fee_estimate, 0),
       COALESCE(x.pending_credit, 0), %(merchant)s, %(livemode)s,
       COALESCE(x.state = 'matched' AND x.settled_on - x.occurred_at::date > %(delay)s, false),
       CASE WHEN x.state IN ('matched', 'fee') THEN %(journal_prefix)s || x.currency
            WHEN x.state = 'payout' AND x.net <> 0
                THEN %(journal_prefix)s || 'payouts:' || x.currency
            ELSE '' END
FROM (
    SELECT y.*,
        CASE
            WHEN y.record_type = 'payout' THEN 'payout'
            WHEN y.record_type = 'fee' THEN 'fee'
            WHEN y.eid IS NULL THEN 'unexpected_in_report'
            WHEN y.matched_before
                 OR row_number() OVER (PARTITION BY y.eid ORDER BY y.line_number) > 1
                THEN 'duplicate'
            WHEN y.currency <> y.e_currency THEN 'mismatched'
            WHEN abs(y.signed_gross - y.amount) > %(tolerance)s THEN 'mismatched'
            WHEN y.agreed IS NOT NULL AND abs(y.fee - y.agreed) > %(tolerance)s
                THEN 'mismatched'
            ELSE 'matched'
        END AS state
    FROM (
        SELECT s.*, {chosen},
               CASE WHEN s.record_type = 'refund'
                         OR (s.record_type = 'chargeback' AND s.gross < 0)
                    THEN -s.gross ELSE s.gross END AS signed_gross,
               CASE WHEN e1.eid IS NOT NULL THEN 'psp_reference'
                    WHEN e2.eid IS NOT NULL THEN 'modification_reference'
                    ELSE 'merchant_reference' END AS match_key,
               CASE WHEN {chosen_kind} = 'capture' THEN {agreed_fee}
                    WHEN {chosen_kind} IN ('chargeback', 'reversal') THEN {chosen_fee}
               END AS agreed
        FROM recon_staging s
        LEFT JOIN recon_expected e1
            ON e1.kind = {kind} AND e1.psp_key = {psp_key} AND s.psp_reference <> ''
        LEFT JOIN recon_expected e2
            ON e2.kind = {kind} AND e2.mod_key = s.modification_reference
           AND s.modification_reference <> ''
        LEFT JOIN recon_expected e3
            ON e3.kind = {kind} AND e3.merchant_reference = s.merchant_reference
           AND s.merchant_reference <> ''
    ) y
) x"""

_SIGNED_GROSS = (
    "(CASE WHEN l.record_type = 'refund' OR (l.record_type = 'chargeback' AND l.gross < 0) "
    "THEN -l.gross ELSE l.gross END)"
)

LINE_DISCREPANCIES = f"""
INSERT INTO reconciliation_discrepancy (
    public_id, run_id, connector_id, merchant_id, livemode, kind, status, line_id, report_id,
    payout_id, expected_kind, expected_id, expected_public_id, reference, currency, our_amount,
    psp_amount, our_fee, psp_fee, difference, tolerance, match_key, occurred_on, resolution,
    resolution_note, resolved_by, journal, reopen_count, created_at)
SELECT 'dsc_' || replace(gen_random_uuid()::text, '-', ''), %(run)s, %(connector)s,
       %(merchant)s, %(livemode)s, d.kind, 'open', d.id, d.report_id, '', d.expected_kind,
       d.expected_id, d.expected_public_id, d.reference, d.currency, d.expected_amount,
       d.signed_gross, d.agreed_fee, d.fee,
       CASE WHEN d.kind = 'fee_mismatch' THEN d.fee - d.agreed_fee
            WHEN d.expected_amount IS NULL THEN d.signed_gross
            ELSE d.signed_gross - d.expected_amount END,
       %(tolerance)s, d.match_key, d.settled_on, '', '', '', '', 0, now()
FROM (
    SELECT l.*, {_SIGNED_GROSS} AS signed_gross,
        CASE WHEN l.record_type IN ('refund', 'chargeback') AND l.modification_reference <> ''
             THEN l.modification_reference ELSE l.psp_reference END AS reference,
        CASE
            WHEN l.state = 'duplicate' THEN 'duplicate'
            WHEN l.state = 'unexpected_in_report' AND l.record_type = 'refund'
                THEN 'unexpected_refund'
            WHEN l.state = 'unexpected_in_report' THEN 'unexpected_in_report'
            WHEN l.currency <> l.expected_currency THEN 'currency_mismatch'
            WHEN abs({_SIGNED_GROSS} - l.expected_amount) > %(tolerance)s THEN 'amount_mismatch'
            ELSE 'fee_mismatch'
        END AS kind
    FROM reconciliation_line l
    WHERE l.report_id = %(report)s
      AND l.state IN ('mismatched', 'unexpected_in_report', 'duplicate')
) d
RETURNING id"""

PAYOUT_DISCREPANCIES = """
INSERT INTO reconciliation_discrepancy (
    public_id, run_id, connector_id, merchant_id, livemode, kind, status, line_id, report_id,
    payout_id, expected_kind, expected_id, expected_public_id, reference, currency, our_amount,
    psp_amount, our_fee, psp_fee, difference, tolerance, match_key, occurred_on, resolution,
    resolution_note, resolved_by, journal, reopen_count, created_at)
SELECT 'dsc_' || replace(gen_random_uuid()::text, '-', ''), %(run)s, %(connector)s,
       %(merchant)s, %(livemode)s, 'payout_mismatch', 'open', NULL, %(report)s, p.payout_id,
       '', NULL, '', p.payout_id, p.currency, p.lines_net, p.paid, NULL, NULL,
       p.paid - p.lines_net, %(tolerance)s, 'batch', p.settled_on, '', '', '', '', 0, now()
FROM (
    SELECT batch, currency,
           COALESCE(sum(net) FILTER (WHERE record_type <> 'payout'), 0) AS lines_net,
           -sum(net) FILTER (WHERE record_type = 'payout') AS paid,
           max(payout_id) FILTER (WHERE record_type = 'payout') AS payout_id,
           max(settled_on) AS settled_on
    FROM reconciliation_line WHERE report_id = %(report)s
    GROUP BY batch, currency
) p
WHERE p.paid IS NOT NULL AND abs(p.paid - p.lines_net) > %(tolerance)s
RETURNING id"""


# the matched item's columns, from the first key that matched (one row of recon_expected, never
# a mix), without joining the table a fourth time
_CHOSEN_COLUMNS = (
    ("eid", "eid"),
    ("kind", "kind"),
    ("object_id", "object_id"),
    ("public_id", "public_id"),
    ("amount", "amount"),
    ("currency", "e_currency"),
    ("fee_estimate", "fee_estimate"),
    ("pending_credit", "pending_credit"),
    ("occurred_at", "occurred_at"),
    ("matched_before", "matched_before"),
)


def _chosen(column: str) -> str:
    return (
        f"CASE WHEN e1.eid IS NOT NULL THEN e1.{column} "
        f"WHEN e2.eid IS NOT NULL THEN e2.{column} ELSE e3.{column} END"
    )


CHOSEN = ",\n               ".join(f"{_chosen(c)} AS {alias}" for c, alias in _CHOSEN_COLUMNS)


def agreed_fee_sql(profile: ReconciliationProfile, amount: str = "e.amount") -> str:
    """The agreed fee of a capture of `amount` as SQL: fixed + each percentage component in
    basis points, rounded half up (integers only: the profile's numbers are ints, checked)."""
    terms = [str(int(profile.fee_fixed))]
    for bps in profile.fee_components_bps or []:
        terms.append(f"(({amount} * {int(bps)} + 5000) / 10000)")
    return " + ".join(terms)


_EXPECTATION_COLUMNS = (
    "x_kind, x_object_id, x_public_id, x_psp_reference, x_modification_reference, "
    "x_merchant_reference, x_amount, x_currency, x_merchant_id, x_livemode, x_connector_id, "
    "x_occurred_at"
)


def expectations_sql(*, connector_ids: list[int], since) -> tuple[str, list]:
    """Everything we expect the PSP to settle, as one SQL query and its parameters: our
    captures and refunds (apps.intents) and the disputes' withdrawals (`chargeback`) and
    reinstatements (`reversal`) (apps.disputes), each with `x_fee`: the fee the ledger booked
    for it when the item itself carries one (a dispute fee), else NULL (a capture's estimate
    comes from its journal)."""
    intents = intent_selectors.settlement_expectations(connector_ids=connector_ids, since=since)
    disputes = dispute_selectors.settlement_expectations(connector_ids=connector_ids, since=since)
    i_sql, i_params = intents.query.sql_with_params()
    d_sql, d_params = disputes.query.sql_with_params()
    sql = (
        f"SELECT {_EXPECTATION_COLUMNS}, NULL::bigint AS x_fee FROM ({i_sql}) i "
        f"UNION ALL SELECT {_EXPECTATION_COLUMNS}, x_fee FROM ({d_sql}) d"
    )
    return sql, [*i_params, *d_params]


def _expected_sql(profile: ReconciliationProfile) -> tuple[str, list]:
    e_sql, e_params = expectations_sql(
        connector_ids=[profile.connector_id], since=profile.expect_since
    )
    f_sql, f_params = ledger_selectors.capture_journal_figures().query.sql_with_params()
    return CREATE_EXPECTED.format(expectations=e_sql, figures=f_sql), [*e_params, *f_params]


def load_report(
    *, report: SettlementReport, run, profile: ReconciliationProfile, connector
) -> tuple[dict, list[int]]:
    """Call inside a transaction. Raises ReportParseError (nothing applied: the caller's
    transaction rolls back). Returns (timings, new discrepancy ids)."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    lines = gateway.settlement_report_lines(
        connector=connector,
        raw_lines=storage.raw_lines(report.path),
        filename=report.name,
        merchant_account=profile.merchant_account,
    )
    count, last, payout_ids = 0, 0, set()
    with connection.cursor() as cursor:
        # ON COMMIT DROP cleans up; dropped first for a caller with an outer transaction
        cursor.execute("DROP TABLE IF EXISTS recon_staging, recon_expected")
        # hash joins and the duplicate window of a million lines in memory, for this
        # transaction only
        cursor.execute(
            "SELECT set_config('work_mem', %s, true)", [settings.RECONCILIATION_WORK_MEM]
        )
        cursor.execute(CREATE_STAGING)
        with cursor.cursor.copy(
            f"COPY recon_staging ({', '.join(STAGING_COLUMNS)}) FROM STDIN"
        ) as copy:
            write = copy.write_row
            for line in lines:
                write(
                    (
                        line.line_number,
                        line.record_type,
                        line.psp_reference,
                        line.modification_reference,
                        line.merchant_reference,
                        line.currency,
                        line.gross,
                        line.fee,
                        line.net,
                        line.batch,
                        line.payout_id,
                        line.settled_at or None,
                    )
                )
                count += 1
                last = line.line_number
                if line.payout_id and line.record_type != "payout":
                    payout_ids.add(line.payout_id)
        timings["parse_and_copy"] = time.monotonic() - started
        if connector.connector_type == "stripe" and payout_ids:
            # Stripe's report groups lines by automatic payout; the payouts themselves (their
            # amounts) come from the Payout API, appended after the file's last line
            payouts = gateway.settlement_payouts(connector=connector, payout_ids=sorted(payout_ids))
            for offset, payout in enumerate(payouts, 1):
                cursor.execute(
                    "INSERT INTO recon_staging VALUES "
                    "(%s, 'payout', '', '', %s, %s, %s, 0, %s, %s, %s, NULL)",
                    [
                        last + offset,
                        payout.payout_id,
                        payout.currency,
                        -payout.amount,
                        -payout.amount,
                        payout.payout_id,
                        payout.payout_id,
                    ],
                )
        cursor.execute("ANALYZE recon_staging")
        step = time.monotonic()
        sql, params = _expected_sql(profile)
        cursor.execute(sql, params)
        cursor.execute("ANALYZE recon_expected")
        timings["expected"] = time.monotonic() - step
        step = time.monotonic()
        common = {
            "report": report.pk,
            "run": run.pk,
            "connector": connector.pk,
            "merchant": connector.merchant_id,
            "livemode": connector.livemode,
            "tolerance": profile.tolerance,
        }
        match_params = {
            **common,
            "delay": profile.settlement_delay_days,
            "journal_prefix": f"recon:{report.pk}:",
        }
        match_sql = MATCH.format(
            agreed_fee=agreed_fee_sql(profile, amount=_chosen("amount")),
            kind=_KIND,
            chosen=CHOSEN,
            chosen_kind=_chosen("kind"),
            chosen_fee=_chosen("fee_estimate"),
            psp_key=_PSP_KEY,
        )
        cursor.execute(match_sql, match_params)
        timings["match"] = time.monotonic() - step
        step = time.monotonic()
        cursor.execute(LINE_DISCREPANCIES, common)
        discrepancies = [row[0] for row in cursor.fetchall()]
        cursor.execute(PAYOUT_DISCREPANCIES, common)
        discrepancies += [row[0] for row in cursor.fetchall()]
        timings["discrepancies"] = time.monotonic() - step
    report.line_count = count
    return timings, discrepancies


__all__ = ["LineState", "load_report"]
