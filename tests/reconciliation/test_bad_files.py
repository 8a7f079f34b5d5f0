"""Bad input (issue 14): a file that does not parse is refused whole with its file, line,
column and reason, nothing of it applied, and the run records why; the same file twice is
recognized."""

from __future__ import annotations

import pytest

from apps.core.audit import Actor
from apps.ledger.models import JournalTransaction
from apps.psp_adapters.contract import ReportParseError
from apps.psp_adapters.settlement import ADYEN_COLUMNS, iter_adyen_report, iter_stripe_report
from apps.reconciliation import services
from apps.reconciliation.models import SettlementLine, SettlementReport

HEADER = ",".join(ADYEN_COLUMNS)


def adyen_row(**overrides) -> str:
    row = {
        "Company Account": "PlatformCompany",
        "Merchant Account": "DemoShopECOM",
        "Psp Reference": "8815000000000001",
        "Merchant Reference": "pa_1",
        "Payment Method": "visa",
        "Creation Date": "2026-12-04 10:00:00",
        "TimeZone": "UTC",
        "Type": "Settled",
        "Modification Reference": "8815000000000001",
        "Gross Currency": "EUR",
        "Gross Debit (GC)": "",
        "Gross Credit (GC)": "100.00",
        "Exchange Rate": "1",
        "Net Currency": "EUR",
        "Net Debit (NC)": "",
        "Net Credit (NC)": "98.59",
        "Commission (NC)": "0.11",
        "Markup (NC)": "0.30",
        "Scheme Fees (NC)": "0.20",
        "Interchange (NC)": "0.80",
        "Payment Method Variant": "visa",
        "Modification Merchant Reference": "",
        "Batch Number": "7",
    }
    row.update(overrides)
    return ",".join(row[c] for c in ADYEN_COLUMNS)


GOOD = f"{HEADER}\n{adyen_row()}\n"
STRIPE_HEADER = (
    "automatic_payout_id,balance_transaction_id,currency,gross,fee,net,reporting_category,"
    "source_id,payment_intent_id"
)

# (file bytes, expected line, expected column, words in the reason)
BAD_FILES = {
    "missing column": (
        GOOD.replace(",Batch Number", "").encode(),
        1,
        "Batch Number",
        "missing column",
    ),
    "wrong delimiter": (GOOD.replace(",", ";").encode(), 1, "", "wrong delimiter"),
    "wrong encoding": (
        f"{HEADER}\n{adyen_row(**{'Merchant Reference': 'café'})}\n".encode("latin-1"),
        2,
        "",
        "not UTF-8",
    ),
    "unknown currency": (
        f"{HEADER}\n{adyen_row(**{'Net Currency': 'XYZ'})}\n".encode(),
        2,
        "Net Currency",
        "unknown currency",
    ),
    "non-numeric amount": (
        f"{HEADER}\n{adyen_row(**{'Net Credit (NC)': 'ninety'})}\n".encode(),
        2,
        "Net Credit (NC)",
        "not an amount",
    ),
    "truncated last line": (
        (GOOD + adyen_row()[:60]).encode(),
        3,
        "",
        "truncated",
    ),
    "another merchant account": (
        f"{HEADER}\n{adyen_row()}\n{adyen_row(**{'Merchant Account': 'OtherShop'})}\n".encode(),
        3,
        "Merchant Account",
        "OtherShop",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_the_parser_names_file_line_column_and_reason(case):
    content, line, column, reason = BAD_FILES[case]
    with pytest.raises(ReportParseError) as caught:
        list(
            iter_adyen_report(
                content.splitlines(keepends=True),
                filename="batch_7.csv",
                merchant_account="DemoShopECOM",
            )
        )
    error = caught.value
    assert (error.filename, error.line, error.column) == ("batch_7.csv", line, column)
    assert reason in error.reason
    assert str(error).startswith(f"batch_7.csv, line {line}")


def test_the_good_file_parses():
    (line,) = iter_adyen_report(
        GOOD.encode().splitlines(keepends=True), filename="b.csv", merchant_account="DemoShopECOM"
    )
    assert (line.gross, line.fee, line.net, line.batch) == (10000, 141, 9859, "7")


def test_stripe_rows_whose_net_is_not_gross_minus_fee_are_refused():
    content = f"{STRIPE_HEADER}\npo_1,txn_1,eur,10.00,0.40,9.50,charge,ch_1,pi_1\n"
    with pytest.raises(ReportParseError, match="line 2, column 'net'"):
        list(iter_stripe_report(content.encode().splitlines(keepends=True), filename="s.csv"))


def test_a_stripe_file_without_a_header_column_is_refused():
    content = "automatic_payout_id,currency,gross\npo_1,eur,1.00\n"
    with pytest.raises(ReportParseError, match="missing column 'balance_transaction_id'"):
        list(iter_stripe_report(content.encode().splitlines(keepends=True), filename="s.csv"))


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["truncated last line", "another merchant account"])
def test_an_upload_that_does_not_parse_is_refused_whole(case, adyen_recon):
    content, line, column, reason = BAD_FILES[case]
    report, is_new, run = services.report_upload(
        connector=adyen_recon,
        name="settlement_detail_report_batch_7.csv",
        chunks=[content],
        actor=Actor.system("test"),
    )
    report.refresh_from_db()
    assert is_new and report.status == SettlementReport.Status.REFUSED
    assert (report.error_line, report.error_column) == (line, column)
    assert reason in report.error
    # nothing of it applied: no line (the good first line neither), no journal
    assert not SettlementLine.objects.filter(report=report).exists()
    assert not JournalTransaction.objects.filter(source_id=f"report:{report.pk}").exists()
    assert run.status == "succeeded" and run.reports_refused == 1
    assert "settlement_detail_report_batch_7.csv, line" in run.error

    # the same bytes again: recognized, not loaded again
    again, is_new, rerun = services.report_upload(
        connector=adyen_recon,
        name="copy.csv",
        chunks=[content],
        actor=Actor.system("test"),
    )
    assert again.pk == report.pk and not is_new
    assert rerun.reports_already_loaded == 1
