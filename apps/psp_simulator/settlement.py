"""Settlement batches and their reports, per connector (issue 14).

The simulator settles what it captured and refunded in daily batches: an item captured (or
refunded) on day D lands in the batch of day D + `delay_days` (T+1 by default). Nothing runs on
a clock: `POST /_sim/connectors/<name>/settlement/settle {"up_to": "YYYY-MM-DD"}` builds every
batch due up to that day, so tests never sleep. Each batch is served in its dialect's real
format:

- Adyen: the Settlement details report, `settlement_detail_report_batch_<N>.csv`, downloaded
  from `/adyen/<name>/reports/download/MerchantAccount/<merchantAccount>/<file>`;
- Stripe: the itemized payout reconciliation report (`payout_reconciliation.itemized.5`): a
  report run (`POST /stripe/<name>/v1/reporting/report_runs`), then its file
  (`GET /stripe/<name>/v1/files/<file>/contents`); each batch is one automatic payout per
  currency (`GET /v1/payouts/<po_…>` gives its amount).

Fees are realistic per dialect (Adyen: interchange + scheme fee + markup + a fixed commission,
Interchange++; Stripe: percentage + fixed). Discrepancies are injected per connector like the
other faults: each kind has a rate (0..1) drawn per item (per payout for `payout_mismatch`)
with a seeded RNG, and every injection is recorded (`GET …/settlement` lists them) so a test can
compare what the platform found with what was injected.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
import string
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

DISCREPANCY_KINDS = (
    "missing_capture",  # a capture never appears in any report
    "amount_differs",  # the settled gross differs from what was captured
    "unknown_transaction",  # a line for a payment we never made
    "duplicate_line",  # the same line twice
    "fee_differs",  # a fee other than the agreed one
    "unknown_refund",  # a refund settled that we never made
    "late_settlement",  # the item arrives one batch later
    "payout_mismatch",  # the payout total does not match its lines
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

# payout_reconciliation.itemized.5, Stripe's default columns (plus the metadata we set)
STRIPE_COLUMNS = (
    "automatic_payout_id",
    "automatic_payout_effective_at",
    "balance_transaction_id",
    "created_utc",
    "created",
    "available_on_utc",
    "available_on",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "customer_facing_amount",
    "customer_facing_currency",
    "automatic_payout_effective_at_utc",
    "charge_id",
    "payment_intent_id",
    "charge_created_utc",
    "charge_created",
    "payment_metadata[attempt_id]",
    "refund_metadata[refund_id]",
)
STRIPE_CATEGORIES = {
    "Settled": "charge",
    "Refunded": "refund",
    "Chargeback": "dispute",
    "ChargebackReversed": "dispute_reversal",
}
STRIPE_REPORT_TYPES = ("payout_reconciliation.itemized.5", "payout_reconciliation.itemized.4")

ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "ugx", "xof", "xaf"}
THREE_DECIMAL = {"kwd", "bhd", "jod", "omr", "tnd"}


class InvalidSettlementConfig(ValueError):
    pass


def exponent(currency: str) -> int:
    currency = currency.lower()
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def major(amount: int, currency: str) -> str:
    """Minor units as the report's major-unit decimal string ("12.34", "1000", "1.500")."""
    places = exponent(currency)
    return f"{Decimal(amount).scaleb(-places):.{places}f}"


@dataclass
class SettlementConfig:
    delay_days: int = 1  # T+1
    company_account: str = "PlatformCompany"
    time_zone: str = "UTC"
    # Adyen Interchange++ (basis points of the gross, plus a fixed commission in minor units)
    adyen_interchange_bps: int = 80
    adyen_scheme_fee_bps: int = 20
    adyen_markup_bps: int = 30
    adyen_commission_fixed: int = 11
    # Stripe blended pricing
    stripe_percent_bps: int = 150
    stripe_fixed: int = 25
    # discrepancy injection: kind -> rate (0..1)
    discrepancies: dict[str, float] = field(default_factory=dict)
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: SettlementConfig | None = None):
        if not isinstance(data, dict):
            raise InvalidSettlementConfig("settlement settings must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidSettlementConfig(f"unknown settlement fields: {', '.join(unknown)}")
        merged = asdict(base) if base is not None else {}
        merged.update(data)
        config = cls(**merged)
        config.validate()
        return config

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or value < 0):
                raise InvalidSettlementConfig(f"{f.name} must be a whole number >= 0")
        if not isinstance(self.discrepancies, dict):
            raise InvalidSettlementConfig("discrepancies must be an object of kind: rate")
        for kind, rate in self.discrepancies.items():
            if kind not in DISCREPANCY_KINDS:
                raise InvalidSettlementConfig(
                    f"unknown discrepancy kind {kind!r}; one of {', '.join(DISCREPANCY_KINDS)}"
                )
            if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
                raise InvalidSettlementConfig(f"the rate of {kind} must be between 0 and 1")
        if self.seed is not None and not isinstance(self.seed, int):
            raise InvalidSettlementConfig("seed must be an integer")


@dataclass
class Line:
    """One settled item, dialect-neutral; amounts signed in minor units (credit > 0)."""

    type: str  # Settled | Refunded | Chargeback | ChargebackReversed | MerchantPayout
    payment_id: str  # Adyen Psp Reference / Stripe payment intent
    modification_id: str  # Adyen Modification Reference / Stripe charge or refund id
    merchant_reference: str  # our attempt id
    modification_merchant_reference: str  # our refund id
    currency: str
    gross: int
    fees: dict[str, int]  # commission, markup, scheme, interchange (Adyen) / fee (Stripe)
    created: int  # unix seconds of the capture or refund
    payment_method: str = "visa"
    charge_id: str = ""
    balance_transaction_id: str = field(default_factory=lambda: _sid("txn"))

    @property
    def fee(self) -> int:
        return sum(self.fees.values())

    @property
    def net(self) -> int:
        return self.gross - self.fee


@dataclass
class Batch:
    number: int
    day: date
    merchant_account: str
    lines: list[Line]
    payouts: dict[str, tuple[str, int]]  # currency -> (payout id, amount)
    created: int

    @property
    def filename(self) -> str:
        return f"settlement_detail_report_batch_{self.number}.csv"


@dataclass
class ReportRun:
    id: str
    report_type: str
    interval_start: int
    interval_end: int
    file_id: str
    created: int


def _sid(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return f"{prefix}_{''.join(secrets.choice(alphabet) for _ in range(24))}"


def _adyen_ref() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


def _day(ts: int) -> date:
    return datetime.fromtimestamp(ts, tz=UTC).date()


def _stripe_description(category: str, line: Line) -> str:
    if category == "charge":
        return f"Payment for {line.merchant_reference}"
    if category == "dispute":
        return f"Chargeback withdrawal for {line.charge_id}"
    if category == "dispute_reversal":
        return f"Chargeback reversal for {line.charge_id}"
    return ""


def _bps(amount: int, bps: int) -> int:
    return (amount * bps + 5000) // 10000  # half up


class ConnectorSettlement:
    """One connector's settlement state. Callers hold the store lock."""

    def __init__(self) -> None:
        self.config = SettlementConfig()
        self.rng = random.Random()
        self.batches: list[Batch] = []
        self.decided: dict[tuple[str, str], dict[str, Any]] = {}  # item -> injections, day
        self.settled: set[tuple[str, str]] = set()
        self.injected: list[dict[str, Any]] = []
        self.report_runs: dict[str, ReportRun] = {}
        self.files: dict[str, bytes] = {}

    def configure(self, config: SettlementConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)

    def view(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.config),
            "batches": [
                {
                    "number": b.number,
                    "date": b.day.isoformat(),
                    "merchant_account": b.merchant_account,
                    "filename": b.filename,
                    "lines": len(b.lines),
                    "payouts": {c: {"id": p, "amount": a} for c, (p, a) in b.payouts.items()},
                }
                for b in self.batches
            ],
            "injected": self.injected,
        }

    # -- fees ------------------------------------------------------------------------------------

    def fees(self, dialect: str, amount: int) -> dict[str, int]:
        c = self.config
        if dialect == "adyen":
            return {
                "commission": c.adyen_commission_fixed,
                "markup": _bps(amount, c.adyen_markup_bps),
                "scheme": _bps(amount, c.adyen_scheme_fee_bps),
                "interchange": _bps(amount, c.adyen_interchange_bps),
            }
        return {"fee": _bps(amount, c.stripe_percent_bps) + c.stripe_fixed}

    # -- batches ---------------------------------------------------------------------------------

    def _draw(self, kind: str) -> bool:
        rate = self.config.discrepancies.get(kind, 0)
        return bool(rate) and self.rng.random() < rate

    def _inject(self, kind: str, reference: str, **details: Any) -> None:
        self.injected.append({"kind": kind, "reference": reference, **details})

    def settle(self, state, up_to: date) -> list[Batch]:
        """Builds every batch due up to `up_to` (inclusive); returns the new ones."""
        due: dict[date, list[Line]] = {}
        delay = timedelta(days=self.config.delay_days)
        accounts: dict[date, str] = {}
        for charge in state.charges.values():
            if charge.amount_captured <= 0:
                continue
            key = ("capture", charge.id)
            if key in self.settled:
                continue
            captured = charge.captured_at or charge.created
            decision = self._decide_capture(key, charge, _day(captured) + delay)
            if decision["day"] > up_to:
                continue
            self.settled.add(key)
            if decision.get("missing"):
                continue
            payment = state.payments.get(charge.payment_id)
            for line in self._capture_lines(state, charge, payment, captured, decision):
                due.setdefault(decision["day"], []).append(line)
            accounts[decision["day"]] = (
                payment.merchant_account if payment else ""
            ) or accounts.get(decision["day"], "")
        for refund in state.refunds.values():
            key = ("refund", refund.id)
            if refund.status != "succeeded" or key in self.settled:
                continue
            day = _day(refund.created) + delay
            if day > up_to:
                continue
            self.settled.add(key)
            charge = state.charges.get(refund.charge_id)
            payment = state.payments.get(refund.payment_id)
            due.setdefault(day, []).append(
                Line(
                    type="Refunded",
                    payment_id=refund.payment_id,
                    modification_id=refund.id,
                    merchant_reference=payment.reference if payment else "",
                    modification_merchant_reference=refund.reference
                    or refund.metadata.get("refund_id", ""),
                    currency=refund.currency,
                    gross=-refund.amount,
                    fees={},
                    created=refund.created,
                    payment_method=(charge.brand if charge else "visa") or "visa",
                    charge_id=refund.charge_id,
                )
            )
        for dispute in state.disputes.values():
            for index, movement in enumerate(dispute.movements):
                key = ("dispute", f"{dispute.id}:{index}")
                if key in self.settled:
                    continue
                day = _day(movement["created"]) + delay
                if day > up_to:
                    continue
                self.settled.add(key)
                payment = state.payments.get(dispute.payment_id)
                due.setdefault(day, []).append(self._dispute_line(dispute, payment, movement))
                accounts[day] = accounts.get(day) or (payment.merchant_account if payment else "")
        last_day = self.batches[-1].day if self.batches else None
        new: list[Batch] = []
        for day in sorted(due):
            batch_day = day if last_day is None or day > last_day else up_to
            if new and new[-1].day == batch_day:
                new[-1].lines.extend(due[day])
                continue
            new.append(self._batch(state, batch_day, due[day], accounts.get(day, "")))
            last_day = batch_day
        for batch in new:
            self._payouts(state, batch)
        self.batches.extend(new)
        return new

    def _dispute_line(self, dispute, payment, movement: dict[str, Any]) -> Line:
        """A chargeback (the amount and the dispute fee withdrawn) or its reversal (the amount
        back; the fee too when the PSP returns it). Adyen: a `Chargeback` /
        `ChargebackReversed` row, the Psp Reference the payment's, the Modification Reference
        the dispute's, the dispute fee in its Commission (NC) column; Stripe: a `dispute` /
        `dispute_reversal` balance transaction, source_id the dispute (du_…), its fee the
        dispute fee."""
        withdrawal = movement["kind"] == "withdrawal"
        fee = movement["fee"]
        fees = {("commission" if dispute.dialect == "adyen" else "fee"): fee}
        return Line(
            type="Chargeback" if withdrawal else "ChargebackReversed",
            payment_id=dispute.payment_id,
            modification_id=dispute.id,
            merchant_reference=payment.reference if payment else "",
            modification_merchant_reference="",
            currency=dispute.currency,
            gross=movement["amount"],
            fees=fees,
            created=movement["created"],
            charge_id=dispute.charge_id,
        )

    def _decide_capture(self, key, charge, day: date) -> dict[str, Any]:
        decision = self.decided.get(key)
        if decision is not None:
            return decision
        decision = {"day": day}
        if self._draw("missing_capture"):
            decision["missing"] = True
            self._inject("missing_capture", charge.payment_id, amount=charge.amount_captured)
        else:
            for kind in DISCREPANCY_KINDS[1:7]:
                if self._draw(kind):
                    decision[kind] = True
            if decision.get("late_settlement"):
                decision["day"] = day + timedelta(days=1)
                self._inject("late_settlement", charge.payment_id, day=decision["day"].isoformat())
        self.decided[key] = decision
        return decision

    def _capture_lines(self, state, charge, payment, captured: int, decision) -> list[Line]:
        amount = charge.amount_captured
        modification = charge.id
        if charge.dialect == "adyen":  # a manual capture has its own modification reference
            modification = next(
                (
                    ref
                    for ref, m in state.modifications.items()
                    if m.get("kind") == "capture" and m.get("payment") == charge.payment_id
                ),
                charge.payment_id,
            )
        gross = amount
        if decision.get("amount_differs"):
            gross = amount - 100 if amount > 100 else amount + 100
            self._inject("amount_differs", charge.payment_id, expected=amount, settled=gross)
        fees = self.fees(charge.dialect, gross)
        if decision.get("fee_differs"):
            first = next(iter(fees))
            fees[first] += 50
            self._inject("fee_differs", charge.payment_id, extra_fee=50)
        line = Line(
            type="Settled",
            payment_id=charge.payment_id,
            modification_id=modification,
            merchant_reference=charge.reference,
            modification_merchant_reference="",
            currency=charge.currency,
            gross=gross,
            fees=fees,
            created=captured,
            payment_method=charge.brand or "visa",
            charge_id=charge.id,
        )
        lines = [line]
        if decision.get("duplicate_line"):
            lines.append(Line(**{**asdict(line), "balance_transaction_id": _sid("txn")}))
            self._inject("duplicate_line", charge.payment_id)
        if decision.get("unknown_transaction"):
            ghost = _adyen_ref() if charge.dialect == "adyen" else _sid("pi")
            lines.append(
                Line(
                    type="Settled",
                    payment_id=ghost,
                    modification_id=ghost if charge.dialect == "adyen" else _sid("ch"),
                    merchant_reference=_sid("ext"),
                    modification_merchant_reference="",
                    currency=charge.currency,
                    gross=amount,
                    fees=self.fees(charge.dialect, amount),
                    created=captured,
                )
            )
            self._inject("unknown_transaction", ghost, amount=amount)
        if decision.get("unknown_refund"):
            ghost = _adyen_ref() if charge.dialect == "adyen" else _sid("re")
            part = max(1, amount // 2)
            lines.append(
                Line(
                    type="Refunded",
                    payment_id=charge.payment_id,
                    modification_id=ghost,
                    merchant_reference=charge.reference,
                    modification_merchant_reference=_sid("ext"),
                    currency=charge.currency,
                    gross=-part,
                    fees={},
                    created=captured,
                    charge_id=charge.id,
                )
            )
            self._inject("unknown_refund", ghost, payment=charge.payment_id, amount=part)
        return lines

    def _batch(self, state, day: date, lines: list[Line], account: str) -> Batch:
        number = (self.batches[-1].number if self.batches else 0) + 1
        return Batch(
            number, day, account or state.name, lines, {}, int(datetime.now(UTC).timestamp())
        )

    def _payouts(self, state, batch: Batch) -> None:
        from apps.psp_simulator.state import Payout

        totals: dict[str, int] = {}
        for line in batch.lines:
            totals[line.currency] = totals.get(line.currency, 0) + line.net
        effective = int(
            datetime(batch.day.year, batch.day.month, batch.day.day, tzinfo=UTC).timestamp()
        )
        for currency, total in sorted(totals.items()):
            paid = total
            payout_id = _sid("po")
            if self._draw("payout_mismatch"):
                paid = total - 100
                self._inject(
                    "payout_mismatch", payout_id, batch=batch.number, lines=total, payout=paid
                )
            batch.payouts[currency] = (payout_id, paid)
            state.payouts[payout_id] = Payout(
                id=payout_id,
                connector=state.name,
                amount=paid,
                currency=currency,
                destination="settlement",
                status="paid",
                metadata={"automatic": "true", "batch": str(batch.number)},
                arrival_date=effective,
                created=effective,
            )

    # -- reports -------------------------------------------------------------------------------

    def batch_by_filename(self, merchant_account: str, filename: str) -> Batch | None:
        for batch in self.batches:
            if batch.filename == filename and batch.merchant_account == merchant_account:
                return batch
        return None

    def adyen_report(self, batch: Batch) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(ADYEN_COLUMNS)
        c = self.config
        # Creation Date: when the line was booked into this batch (its settlement), not when
        # the payment was made
        booked = datetime(batch.day.year, batch.day.month, batch.day.day, 1, tzinfo=UTC)
        created = booked.strftime("%Y-%m-%d %H:%M:%S")
        for line in batch.lines:
            cur = line.currency
            gross_debit = major(-line.gross, cur) if line.gross < 0 else ""
            gross_credit = major(line.gross, cur) if line.gross >= 0 else ""
            net_debit = major(-line.net, cur) if line.net < 0 else ""
            net_credit = major(line.net, cur) if line.net >= 0 else ""
            fees = line.fees
            writer.writerow(
                [
                    c.company_account,
                    batch.merchant_account,
                    line.payment_id,
                    line.merchant_reference,
                    line.payment_method,
                    created,
                    c.time_zone,
                    line.type,
                    line.modification_id,
                    cur.upper(),
                    gross_debit,
                    gross_credit,
                    "1",
                    cur.upper(),
                    net_debit,
                    net_credit,
                    major(fees["commission"], cur) if "commission" in fees else "",
                    major(fees["markup"], cur) if "markup" in fees else "",
                    major(fees["scheme"], cur) if "scheme" in fees else "",
                    major(fees["interchange"], cur) if "interchange" in fees else "",
                    line.payment_method,
                    line.modification_merchant_reference,
                    batch.number,
                ]
            )
        created = datetime.fromtimestamp(batch.created, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        for currency, (payout_id, amount) in sorted(batch.payouts.items()):
            writer.writerow(
                [
                    c.company_account,
                    batch.merchant_account,
                    "",
                    payout_id,
                    "",
                    created,
                    c.time_zone,
                    "MerchantPayout",
                    "",
                    "",
                    "",
                    "",
                    "",
                    currency.upper(),
                    major(amount, currency) if amount >= 0 else "",
                    major(-amount, currency) if amount < 0 else "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    batch.number,
                ]
            )
        return out.getvalue().encode()

    def stripe_report(self, interval_start: int, interval_end: int) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(STRIPE_COLUMNS)
        for batch in self.batches:
            effective = datetime(batch.day.year, batch.day.month, batch.day.day, tzinfo=UTC)
            ts = int(effective.timestamp())
            if not interval_start <= ts < interval_end:
                continue
            for line in batch.lines:
                created = datetime.fromtimestamp(line.created, tz=UTC)
                category = STRIPE_CATEGORIES.get(line.type, "adjustment")
                cur = line.currency
                writer.writerow(
                    [
                        batch.payouts[cur][0],
                        effective.strftime("%Y-%m-%d %H:%M:%S"),
                        line.balance_transaction_id,
                        created.strftime("%Y-%m-%d %H:%M:%S"),
                        line.created,
                        effective.strftime("%Y-%m-%d %H:%M:%S"),
                        ts,
                        cur,
                        major(line.gross, cur),
                        major(line.fee, cur),
                        major(line.net, cur),
                        category,
                        line.modification_id,
                        _stripe_description(category, line),
                        major(abs(line.gross), cur),
                        cur,
                        effective.strftime("%Y-%m-%d %H:%M:%S"),
                        line.charge_id,
                        line.payment_id,
                        created.strftime("%Y-%m-%d %H:%M:%S"),
                        line.created,
                        line.merchant_reference
                        if category in ("charge", "dispute", "dispute_reversal")
                        else "",
                        line.modification_merchant_reference if category == "refund" else "",
                    ]
                )
        return out.getvalue().encode()

    def create_report_run(self, report_type: str, start: int, end: int) -> ReportRun:
        run = ReportRun(
            _sid("frr"), report_type, start, end, _sid("file"), int(datetime.now(UTC).timestamp())
        )
        self.files[run.file_id] = self.stripe_report(start, end)
        self.report_runs[run.id] = run
        return run

    def render_report_run(self, run: ReportRun, base_url: str) -> dict[str, Any]:
        body = self.files[run.file_id]
        return {
            "id": run.id,
            "object": "reporting.report_run",
            "created": run.created,
            "error": None,
            "livemode": False,
            "parameters": {"interval_start": run.interval_start, "interval_end": run.interval_end},
            "report_type": run.report_type,
            "result": {
                "id": run.file_id,
                "object": "file",
                "created": run.created,
                "expires_at": run.created + 7 * 86400,
                "filename": f"{run.file_id}.csv",
                "purpose": "finance_report_run",
                "size": len(body),
                "title": f"{run.report_type} {run.id}",
                "type": "csv",
                "url": f"{base_url}/v1/files/{run.file_id}/contents",
            },
            "status": "succeeded",
            "succeeded_at": run.created,
        }
