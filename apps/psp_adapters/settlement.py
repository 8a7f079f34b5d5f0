"""Streaming settlement report parsers (issue 14): Adyen's Settlement details report and
Stripe's itemized payout reconciliation report, one line at a time.

A report is read as an iterator of raw byte lines and never held whole, so a million-line file
costs the same memory as a ten-line one. Any line that does not parse stops the whole file with
a `ReportParseError` naming the file, the line, the column and the reason: the caller applies a
report all or nothing. Checked: the header (every documented column present; a file split on
another delimiter is named as such), the encoding (UTF-8, a BOM allowed), each line's field count
(a truncated last line), currencies (ISO 4217), amounts (decimal, no more places than the
currency has), and the merchant account when the caller names the one it expects.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation

import iso4217

from apps.psp_adapters.contract import (
    ReportParseError,
    SettlementLine,
    SettlementPayout,
    SettlementReportRef,
)

ADYEN_COLUMNS = (
    "Company Account",
    "Merchant Account",
    "Psp Reference",
    "Merchant Reference",
    "Payment Method",
    "Creation Date",
    "TimeZone",
    "Type",
    "Modification Reference",
    "Gross Currency",
    "Gross Debit (GC)",
    "Gross Credit (GC)",
    "Exchange Rate",
    "Net Currency",
    "Net Debit (NC)",
    "Net Credit (NC)",
    "Commission (NC)",
    "Markup (NC)",
    "Scheme Fees (NC)",
    "Interchange (NC)",
    "Payment Method Variant",
    "Modification Merchant Reference",
    "Batch Number",
)
ADYEN_TYPES = {
    "settled": "charge",
    "settledbulk": "charge",
    "refunded": "refund",
    "refundedbulk": "refund",
    "refundedreversed": "refund",
    "chargeback": "chargeback",
    "secondchargeback": "chargeback",
    "chargebackreversed": "chargeback",
    "fee": "fee",
    "invoicededuction": "fee",
    "misccosts": "fee",
    "paymentcost": "fee",
    "merchantpayout": "payout",
    "depositcorrection": "adjustment",
    "balancetransfer": "adjustment",
}
STRIPE_REQUIRED = (
    "automatic_payout_id",
    "balance_transaction_id",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
)
STRIPE_CATEGORIES = {
    "charge": "charge",
    "refund": "refund",
    "refund_failure": "refund",
    "dispute": "chargeback",
    "dispute_reversal": "chargeback",
    "fee": "fee",
    "network_cost": "fee",
    "payout": "payout",
    "payout_reversal": "payout",
}
_POWERS = [10**n for n in range(8)]
_DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'"}


@functools.lru_cache(maxsize=256)
def _exponent(code: str) -> int | None:
    try:
        return iso4217.Currency(code.upper()).exponent
    except (ValueError, KeyError):
        return None


class _Reader:
    """CSV rows with their line numbers from raw byte lines, decoded strictly as UTF-8."""

    def __init__(self, raw_lines: Iterable[bytes], filename: str) -> None:
        self.filename = filename
        self.line = 0
        self._raw = raw_lines

    def error(self, reason: str, column: str = "", line: int | None = None) -> ReportParseError:
        return ReportParseError(self.filename, self.line if line is None else line, column, reason)

    def _text(self) -> Iterator[str]:
        for number, raw in enumerate(self._raw, 1):
            self.line = number
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self.error(
                    f"not UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start + 1}"
                ) from None

    def rows(self) -> Iterator[tuple[int, list[str], bool]]:
        """(line number, fields, ends with a newline) per non-blank line."""
        reader = csv.reader(self._text(), strict=True)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise self.error(f"not CSV: {exc}") from None
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            yield self.line, row, True

    def header(self, rows: Iterator[tuple[int, list[str], bool]], required) -> dict[str, int]:
        try:
            _, header, _ = next(rows)
        except StopIteration:
            raise self.error("the file is empty", line=1) from None
        header = [name.strip() for name in header]
        if len(header) == 1:
            for delimiter, name in _DELIMITERS.items():
                if delimiter in header[0]:
                    raise self.error(
                        f"wrong delimiter: the header is separated by {name}, not ','", line=1
                    )
        index = {name: position for position, name in enumerate(header)}
        for name in required:
            if name not in index:
                raise self.error(f"missing column {name!r}", column=name, line=1)
        return index


_AMOUNT_CACHE: dict[tuple[str, int], int] = {}
_AMOUNT_CACHE_MAX = 100_000  # bounded: cleared when full (a few MB at most)


def _amount(reader: _Reader, text: str, exponent: int, column: str) -> int:
    if not text:
        return 0
    cached = _AMOUNT_CACHE.get((text, exponent))
    if cached is not None:  # reports repeat amounts and fees a great deal
        return cached
    value = _parse_amount(reader, text, exponent, column)
    if len(_AMOUNT_CACHE) >= _AMOUNT_CACHE_MAX:
        _AMOUNT_CACHE.clear()
    _AMOUNT_CACHE[(text, exponent)] = value
    return value


def _parse_amount(reader: _Reader, text: str, exponent: int, column: str) -> int:
    # fast path for the usual shape, "1234.56" (ASCII digits, at most `exponent` decimals):
    # exact integer arithmetic, no Decimal; anything else takes the checked path below
    head, dot, tail = text.partition(".")
    if (
        head.isdigit()
        and head.isascii()
        and (not dot or (0 < len(tail) <= exponent and tail.isdigit() and tail.isascii()))
    ):
        return int(head) * _POWERS[exponent] + (
            int(tail) * _POWERS[exponent - len(tail)] if dot else 0
        )
    text = text.strip()
    if not text:
        return 0
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise reader.error(f"not an amount: {text!r}", column) from None
    if not value.is_finite():
        raise reader.error(f"not an amount: {text!r}", column)
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise reader.error(f"{text!r} has more decimal places than the currency allows", column)
    return int(scaled)


_CURRENCY_CACHE: dict[str, tuple[str, int]] = {}


def _currency(reader: _Reader, text: str, column: str) -> tuple[str, int]:
    known = _CURRENCY_CACHE.get(text)
    if known is not None:
        return known
    code = text.strip().lower()
    exponent = _exponent(code) if len(code) == 3 and code.isalpha() else None
    if exponent is None:
        raise reader.error(f"unknown currency {text!r}", column)
    _CURRENCY_CACHE[text] = (code, exponent)
    return code, exponent


def _check_width(reader: _Reader, row: list[str], width: int) -> None:
    if len(row) < width:
        raise reader.error(
            f"the line has {len(row)} fields where the header has {width} (truncated?)"
        )
    if len(row) > width:
        raise reader.error(f"the line has {len(row)} fields where the header has {width}")


def iter_adyen_report(
    raw_lines: Iterable[bytes], *, filename: str, merchant_account: str = ""
) -> Iterator[SettlementLine]:
    """Adyen Settlement details report: gross in the payment currency (GC), net and fees in
    the settlement currency (NC); amounts are major units, the sign from whichever of Debit or
    Credit is filled. Lines carry the signed net, fees positive."""
    reader = _Reader(raw_lines, filename)
    rows = reader.rows()
    index = reader.header(rows, ADYEN_COLUMNS)
    width = len(index)
    col = {name: index[name] for name in ADYEN_COLUMNS}
    fee_columns = ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)")
    for number, row, _ in rows:
        _check_width(reader, row, width)
        kind_text = row[col["Type"]].strip()
        record_type = ADYEN_TYPES.get(kind_text.lower().replace(" ", ""))
        if record_type is None:
            raise reader.error(f"unknown record type {kind_text!r}", "Type")
        account = row[col["Merchant Account"]].strip()
        if merchant_account and account != merchant_account:
            raise reader.error(
                f"the report is for merchant account {account!r}, not {merchant_account!r}",
                "Merchant Account",
            )
        net_currency, net_exp = _currency(reader, row[col["Net Currency"]], "Net Currency")
        net = _amount(reader, row[col["Net Credit (NC)"]], net_exp, "Net Credit (NC)") - _amount(
            reader, row[col["Net Debit (NC)"]], net_exp, "Net Debit (NC)"
        )
        fee = 0
        for column in fee_columns:
            fee += _amount(reader, row[col[column]], net_exp, column)
        gross_text = row[col["Gross Currency"]].strip()
        if gross_text:
            gross_currency, gross_exp = _currency(reader, gross_text, "Gross Currency")
            gross = _amount(
                reader, row[col["Gross Credit (GC)"]], gross_exp, "Gross Credit (GC)"
            ) - _amount(reader, row[col["Gross Debit (GC)"]], gross_exp, "Gross Debit (GC)")
            if gross_currency != net_currency:
                gross = net + fee  # restated in the settlement currency: one line, one currency
            elif gross != net + fee:
                raise reader.error(
                    f"net {net} is not gross {gross} minus fees {fee}", "Net Credit (NC)"
                )
        else:
            gross = net + fee
        refund = record_type == "refund"
        yield SettlementLine(
            psp_reference=row[col["Psp Reference"]].strip(),
            record_type=record_type,
            gross=gross,
            fee=fee,
            net=net,
            currency=net_currency,
            settled_at=row[col["Creation Date"]].strip()[:10],
            merchant_reference=(
                row[col["Modification Merchant Reference"]].strip()
                if refund
                else row[col["Merchant Reference"]].strip()
            ),
            modification_reference=row[col["Modification Reference"]].strip(),
            batch=row[col["Batch Number"]].strip(),
            payout_id=row[col["Merchant Reference"]].strip() if record_type == "payout" else "",
            merchant_account=account,
            line_number=number,
        )


def iter_stripe_report(
    raw_lines: Iterable[bytes], *, filename: str, merchant_account: str = ""
) -> Iterator[SettlementLine]:
    """Stripe itemized payout reconciliation report: one balance transaction per line, grouped
    by `automatic_payout_id`; `gross`, `fee`, `net` in major units, `net = gross - fee`. The
    payouts themselves are not lines of this report (their amounts come from the Payout)."""
    reader = _Reader(raw_lines, filename)
    rows = reader.rows()
    index = reader.header(rows, STRIPE_REQUIRED)
    width = len(index)

    def get(row: list[str], name: str) -> str:
        position = index.get(name)
        return row[position].strip() if position is not None else ""

    for number, row, _ in rows:
        _check_width(reader, row, width)
        category = get(row, "reporting_category")
        record_type = STRIPE_CATEGORIES.get(category, "adjustment")
        currency, exponent = _currency(reader, get(row, "currency"), "currency")
        gross = _amount(reader, get(row, "gross"), exponent, "gross")
        fee = _amount(reader, get(row, "fee"), exponent, "fee")
        net = _amount(reader, get(row, "net"), exponent, "net")
        if net != gross - fee:
            raise reader.error(f"net {net} is not gross {gross} - fee {fee}", "net")
        payout = get(row, "automatic_payout_id")
        refund = record_type == "refund"
        yield SettlementLine(
            psp_reference=get(row, "payment_intent_id") or get(row, "charge_id"),
            record_type=record_type,
            gross=gross,
            fee=fee,
            net=net,
            currency=currency,
            settled_at=(
                get(row, "automatic_payout_effective_at_utc")
                or get(row, "automatic_payout_effective_at")
                or get(row, "available_on_utc")
                or get(row, "created_utc")
            )[:10],
            merchant_reference=get(row, "refund_metadata[refund_id]")
            if refund
            else get(row, "payment_metadata[attempt_id]"),
            modification_reference=get(row, "source_id"),
            batch=payout,
            payout_id=payout,
            merchant_account=merchant_account,
            line_number=number,
        )


# --- listing and download: mixed into the adapters ----------------------------------------------

STRIPE_REPORT_TYPE = "payout_reconciliation.itemized.5"
MAX_REPORTS_PER_LISTING = 31
CHUNK_BYTES = 1 << 16


class SettlementReportUnavailable(Exception):
    """The PSP did not hand the report over (HTTP error, transport failure): try again later."""


def _lines(response) -> Iterator[bytes]:
    """Raw lines (newline kept) from a streamed response, chunk by chunk."""
    pending = b""
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line + b"\n"
        if pending:
            yield pending
    finally:
        response.close()


def _chunks(response) -> Iterator[bytes]:
    try:
        yield from response.iter_content(CHUNK_BYTES)
    finally:
        response.close()


def _days(cursor: str, until: str) -> list[str]:
    from datetime import date, timedelta

    end = date.fromisoformat(until)
    start = date.fromisoformat(cursor) + timedelta(days=1) if cursor else end
    days = []
    while start <= end and len(days) < MAX_REPORTS_PER_LISTING:
        days.append(start.isoformat())
        start += timedelta(days=1)
    return days


class StripeSettlementReports:
    """Stripe serves reports as report runs: create a run for an interval, and once it has
    `succeeded` download its `result` file. One run per day of payouts (`interval` = that UTC
    day); the cursor is the last day fetched."""

    def list_settlement_reports(self, *, cursor: str, until: str) -> list[SettlementReportRef]:
        from datetime import UTC, datetime, timedelta

        from apps.psp_adapters.contract import SettlementReportRef
        from apps.psp_adapters.http import Operation, PSPTransportError

        refs = []
        for day in _days(cursor, until):
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            try:
                response = self._http.request(
                    "POST",
                    "/v1/reporting/report_runs",
                    operation=Operation.RETRIEVE,
                    reference=f"report_run:{day}",
                    form=[
                        ("report_type", STRIPE_REPORT_TYPE),
                        ("parameters[interval_start]", str(int(start.timestamp()))),
                        (
                            "parameters[interval_end]",
                            str(int((start + timedelta(days=1)).timestamp())),
                        ),
                    ],
                )
            except PSPTransportError as exc:
                raise SettlementReportUnavailable(exc.result.raw_code) from None
            run = response.payload if isinstance(response.payload, dict) else {}
            if response.status_code != 200 or run.get("status") != "succeeded":
                break  # pending or failed: this day and the later ones are asked again next time
            result = run.get("result") or {}
            refs.append(
                SettlementReportRef(
                    name=f"{STRIPE_REPORT_TYPE}_{day}.csv",
                    cursor=day,
                    url=str(result.get("url", "")),
                    report_type=STRIPE_REPORT_TYPE,
                )
            )
        return refs

    def download_settlement_report(self, ref: SettlementReportRef) -> Iterator[bytes]:
        return _chunks(self._open(ref.url, ref.name))

    def _open(self, url: str, name: str):
        from apps.psp_adapters.http import Operation, PSPTransportError

        try:
            response = self._http.stream(url, operation=Operation.RETRIEVE, reference=name)
        except PSPTransportError as exc:
            raise SettlementReportUnavailable(exc.result.raw_code) from None
        if response.status_code != 200:
            response.close()
            raise SettlementReportUnavailable(f"HTTP {response.status_code} for {name}")
        return response

    def iter_settlement_report(
        self, raw_lines: Iterable[bytes], *, filename: str, merchant_account: str = ""
    ) -> Iterator[SettlementLine]:
        return iter_stripe_report(raw_lines, filename=filename, merchant_account=merchant_account)

    def settlement_payouts(self, payout_ids: Iterable[str]) -> list[SettlementPayout]:
        from urllib.parse import quote

        from apps.psp_adapters.contract import SettlementPayout
        from apps.psp_adapters.http import Operation, PSPTransportError

        payouts = []
        for payout_id in payout_ids:
            try:
                response = self._http.request(
                    "GET",
                    f"/v1/payouts/{quote(payout_id, safe='')}",
                    operation=Operation.RETRIEVE,
                    reference=payout_id,
                )
            except PSPTransportError as exc:
                raise SettlementReportUnavailable(exc.result.raw_code) from None
            body = response.payload if isinstance(response.payload, dict) else {}
            if response.status_code != 200 or not isinstance(body.get("amount"), int):
                raise SettlementReportUnavailable(
                    f"payout {payout_id}: HTTP {response.status_code}"
                )
            payouts.append(
                SettlementPayout(
                    payout_id=payout_id,
                    amount=body["amount"],
                    currency=str(body.get("currency", "")).lower(),
                    status=str(body.get("status", "")),
                )
            )
        return payouts


class AdyenSettlementReports:
    """Adyen has no report listing API: it announces each report with a REPORT_AVAILABLE
    notification, and batch numbers are consecutive per merchant account. We ask for the next
    batch numbers until one is not there yet (404). Downloads use the report user's
    credentials; `report_base_url` (credentials) is Adyen's Customer Area host, else the
    connector's base URL (the simulator)."""

    def _report_url(self, filename: str) -> str:
        from urllib.parse import quote

        base = (self.config.credentials.get("report_base_url") or "").rstrip("/")
        account = quote(self._merchant_account, safe="")
        path = f"/reports/download/MerchantAccount/{account}/{quote(filename, safe='')}"
        return base + path if base else path

    def list_settlement_reports(self, *, cursor: str, until: str) -> list[SettlementReportRef]:
        from apps.psp_adapters.contract import SettlementReportRef

        refs = []
        number = int(cursor or 0) + 1
        while len(refs) < MAX_REPORTS_PER_LISTING:
            name = f"settlement_detail_report_batch_{number}.csv"
            try:
                response = self._open(self._report_url(name), name)
            except SettlementReportUnavailable as exc:
                if "HTTP 404" in str(exc):
                    break
                raise
            response.close()
            refs.append(
                SettlementReportRef(
                    name=name, cursor=str(number), report_type="settlement_detail_report"
                )
            )
            number += 1
        return refs

    def download_settlement_report(self, ref: SettlementReportRef) -> Iterator[bytes]:
        return _chunks(self._open(self._report_url(ref.name), ref.name))

    _open = StripeSettlementReports._open

    def iter_settlement_report(
        self, raw_lines: Iterable[bytes], *, filename: str, merchant_account: str = ""
    ) -> Iterator[SettlementLine]:
        return iter_adyen_report(
            raw_lines,
            filename=filename,
            merchant_account=merchant_account or self._merchant_account,
        )

    def settlement_payouts(self, payout_ids: Iterable[str]) -> list[SettlementPayout]:
        return []  # the MerchantPayout lines are in the report itself
