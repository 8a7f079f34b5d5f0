"""Ledger postings of a loaded report (issue 14, item 4).

Per report and currency, one settlement journal for every matched line (and fee-only line):
- the net the PSP settled -> `settlement_clearing:<connector>`;
- the receivable those captures and refunds left (gross - the fee estimated at capture)
  leaves `psp_receivable:<connector>`;
- the fee the report charged replaces our estimate on `psp_fees` (actual - estimated).
Then the merchant's pending funds of those captures become available (on settlement, not on a
timer), and the report's payouts move clearing -> bank (one journal per currency).

Idempotent per report line: each line carries the key of the one journal that posts it
(`journal_key`, decided in the matching statement, unique per (report, line) by the line's own
constraint) and the ledger's unique idempotency key makes a second posting a replay. Lines
that are not matched wait for a person (`resolutions.py`)."""

from __future__ import annotations

from django.db import connection

from apps.ledger import postings
from apps.ledger import services as ledger

GROUPS = """
SELECT journal_key, currency,
       sum(net) AS net,
       sum(gross - estimated_fee) FILTER (WHERE state = 'matched') AS receivable,
       COALESCE(sum(fee - estimated_fee) FILTER (WHERE state = 'matched'), 0)
         + COALESCE(sum(-net) FILTER (WHERE state = 'fee'), 0) AS fee_difference,
       COALESCE(sum(pending_credit) FILTER (WHERE expected_kind = 'capture'), 0)
         - COALESCE(sum(expected_amount) FILTER (WHERE expected_kind = 'refund'), 0) AS release,
       count(*) AS lines
FROM reconciliation_line
WHERE report_id = %s AND journal_key <> '' AND record_type <> 'payout'
GROUP BY journal_key, currency
ORDER BY journal_key"""

# a report's payouts, summed per currency (one journal, whatever the number of batches)
PAYOUTS = """
SELECT journal_key, currency, -sum(net), count(*) FROM reconciliation_line
WHERE report_id = %s AND record_type = 'payout' AND journal_key <> ''
GROUP BY journal_key, currency ORDER BY journal_key"""


def post_report(*, report, connector) -> dict:
    """Posts a loaded report's matched lines and payouts; returns what was posted."""
    common = {
        "merchant_id": connector.merchant_id,
        "livemode": connector.livemode,
        "source_type": "settlement_report",
        "source_id": f"report:{report.pk}",
    }
    connector_id = connector.public_id
    posted = {"journals": 0, "released": {}, "payouts": 0}
    with connection.cursor() as cursor:
        cursor.execute(GROUPS, [report.pk])
        groups = cursor.fetchall()
        cursor.execute(PAYOUTS, [report.pk])
        payouts = cursor.fetchall()
    for key, currency, net, receivable, fee_difference, release, lines in groups:
        # sum() of bigint is numeric in PostgreSQL: back to int
        net, fee_difference, release = int(net), int(fee_difference), int(release)
        receivable = int(receivable or 0)
        if net or receivable or fee_difference:
            ledger.ledger_post(
                currency=currency,
                kind="settlement",
                idempotency_key=key,
                legs=postings.settlement_batch_legs(
                    connector=connector_id,
                    net=net,
                    receivable=receivable,
                    fee_difference=fee_difference,
                ),
                metadata={"report": report.name, "lines": lines},
                **common,
            )
            posted["journals"] += 1
        if release > 0:
            ledger.ledger_release_settled_amount(
                currency=currency,
                amount=release,
                idempotency_key=f"{key}:release",
                metadata={"report": report.name},
                **common,
            )
            posted["released"][currency] = release
    for key, currency, amount, count in payouts:
        amount = int(amount)
        if not amount:
            continue
        ledger.ledger_post(
            currency=currency,
            kind="settlement",
            idempotency_key=key,
            legs=postings.settlement_payout_legs(connector=connector_id, amount=amount),
            metadata={"report": report.name, "payouts": count},
            description="settlement payouts",
            **common,
        )
        posted["payouts"] += count
    return posted
