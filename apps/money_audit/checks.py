"""The invariants, as pure functions of plain rows: each returns a `CheckResult` naming the
offenders. `services.money_audit_run` gathers the rows (through the other apps' selectors and
the PSP's record) and stores the results."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

HELD, BROKEN, SKIPPED = "held", "broken", "skipped"

# name -> what it promises; the order is the report's order
INVARIANTS: dict[str, str] = {
    "ledger_journals_balanced": "every ledger journal balances per currency",
    "ledger_balances_match_entries": "every account balance equals the sum of its entries",
    "intents_not_processing": "no payment intent left processing",
    "attempts_resolved": "no PSP attempt left unknown (or unanswered) without review",
    "refunds_resolved": "no refund left pending",
    "refund_reservations": "each intent's refunded amount = its pending + succeeded refunds "
    "<= received",
    "dispute_totals": "each intent's disputed amount = what its disputes hold withdrawn "
    "(refunded + disputed <= received is a CHECK)",
    "outbox_relayed": "every outbox row relayed to an event",
    "webhooks_delivered": "every merchant webhook delivered or dead-lettered",
    "inbound_webhooks_processed": "every PSP notification processed or dead-lettered",
    "psp_no_unbacked_charge": "no PSP charge without an authorized or succeeded intent",
    "psp_no_uncharged_intent": "no authorized or succeeded intent without its PSP charge",
    "psp_no_double_charge": "at most one live PSP charge per intent and per attempt",
    "psp_no_double_capture": "at most one PSP capture per intent",
    "psp_amounts_match": "authorized and captured amounts equal at both ends",
    "psp_refunds_within_captured": "refunds <= captured at the PSP",
    "psp_refunds_match": "each refund's outcome and each intent's refunded total match the PSP's",
    "no_card_numbers": "no card number in text columns or logs",
}
PSP_CHECKS = [name for name in INVARIANTS if name.startswith("psp_")]

LIVE_CHARGE = ("authorized", "captured")  # the simulator's words; declined/canceled hold nothing


@dataclass
class Offender:
    id: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "detail": self.detail}


@dataclass
class CheckResult:
    name: str
    status: str
    offenders: list[Offender] = field(default_factory=list)
    detail: str = ""

    @property
    def title(self) -> str:
        return INVARIANTS[self.name]

    @classmethod
    def from_offenders(cls, name: str, offenders: list[Offender], detail: str = "") -> CheckResult:
        offenders = sorted(offenders, key=lambda o: (o.id, o.detail))
        return cls(name, BROKEN if offenders else HELD, offenders, detail)

    @classmethod
    def skipped(cls, name: str, why: str) -> CheckResult:
        return cls(name, SKIPPED, [], why)


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# --------------------------------------------------------------------------- ledger

_JOURNAL_KINDS = {"unbalanced_transaction", "currency_total"}


def ledger_checks(findings: list[dict]) -> list[CheckResult]:
    """Splits the ledger's own drift check findings into the two ledger invariants."""
    journals, balances = [], []
    for finding in findings:
        if finding["kind"] in _JOURNAL_KINDS:
            ident = finding["transaction__public_id"] or f"{finding['currency']} trial balance"
            journals.append(Offender(ident, finding["detail"]))
        else:
            code = finding["account__code"] or "?"
            ident = f"account {finding['account_id']} ({code}, merchant {finding['merchant_id']})"
            balances.append(Offender(ident, f"{finding['kind']}: {finding['detail']}"))
    return [
        CheckResult.from_offenders("ledger_journals_balanced", journals),
        CheckResult.from_offenders("ledger_balances_match_entries", balances),
    ]


# --------------------------------------------------------------------------- our side


def intents_processing_check(rows: list[dict], now) -> CheckResult:
    offenders = []
    for row in rows:
        operation = row["pending_operation"] or "no pending operation"
        review = ", needs review" if row["needs_review"] else ""
        age = _ago((now - row["updated_at"]).total_seconds())
        offenders.append(Offender(row["public_id"], f"processing ({operation}{review}) for {age}"))
    return CheckResult.from_offenders("intents_not_processing", offenders)


def attempts_resolved_check(rows: list[dict], now) -> CheckResult:
    return CheckResult.from_offenders(
        "attempts_resolved",
        [
            Offender(
                row["public_id"],
                f"{row['outcome']} for {_ago((now - row['started_at']).total_seconds())} "
                f"(intent {row['intent__public_id']})",
            )
            for row in rows
        ],
    )


def refunds_resolved_check(rows: list[dict], now) -> CheckResult:
    return CheckResult.from_offenders(
        "refunds_resolved",
        [
            Offender(
                row["public_id"],
                f"pending for {_ago((now - row['created_at']).total_seconds())} "
                f"(intent {row['intent__public_id']})",
            )
            for row in rows
        ],
    )


def refund_reservations_check(rows: list[dict]) -> CheckResult:
    return CheckResult.from_offenders(
        "refund_reservations",
        [
            Offender(
                row["public_id"],
                f"amount_refunded {row['amount_refunded']}, pending + succeeded refunds "
                f"{row['reserved']}, received {row['amount_received']}",
            )
            for row in rows
        ],
    )


def dispute_totals_check(rows: list[dict]) -> CheckResult:
    return CheckResult.from_offenders(
        "dispute_totals",
        [
            Offender(
                row["public_id"],
                f"amount_disputed {row['amount_disputed']}, held by its disputes {row['held']}",
            )
            for row in rows
        ],
    )


def outbox_check(rows: list[dict], now) -> CheckResult:
    return CheckResult.from_offenders(
        "outbox_relayed",
        [
            Offender(
                f"outbox {row['id']}",
                f"{row['event_type']} {row['object_id']}, unrelayed for "
                f"{_ago((now - row['created_at']).total_seconds())}",
            )
            for row in rows
        ],
    )


def deliveries_check(rows: list[dict], now) -> CheckResult:
    offenders = []
    for row in rows:
        due = row["next_attempt_at"]
        when = f"due {_ago((now - due).total_seconds())} ago" if due else "never scheduled"
        offenders.append(
            Offender(
                row["public_id"],
                f"{row['event__type']} {row['event__public_id']}, pending, {when}, "
                f"{row['attempt_count']} tries",
            )
        )
    return CheckResult.from_offenders("webhooks_delivered", offenders)


def psp_webhooks_check(rows: list[dict], now) -> CheckResult:
    offenders = []
    for row in rows:
        due = row["next_attempt_at"]
        when = f"due {_ago((now - due).total_seconds())} ago" if due else "never scheduled"
        types = ",".join(row["event_types"] or []) or "?"
        error = f": {row['last_error'][:80]}" if row["last_error"] else ""
        offenders.append(Offender(row["public_id"], f"{row['status']} ({types}), {when}{error}"))
    return CheckResult.from_offenders("inbound_webhooks_processed", offenders)


def card_number_check(hits: list, *, columns: int, lines: int) -> CheckResult:
    return CheckResult.from_offenders(
        "no_card_numbers",
        [Offender(hit.where, f"card number {hit.masked}") for hit in hits],
        detail=f"{columns} columns and {lines} log lines scanned",
    )


# --------------------------------------------------------------------------- against the PSP


def _money(charge: dict) -> str:
    return (
        f"{charge['status']}, amount {charge['amount']}, captured {charge['amount_captured']}, "
        f"refunded {charge['amount_refunded']}"
    )


def psp_checks(
    intents: Iterable[dict],
    charges: list[dict],
    psp_refunds: list[dict],
    *,
    simulator_connectors: set[str],
) -> tuple[list[CheckResult], dict]:
    """Compares each intent (with its attempts and refunds) served by the simulator with the
    simulator's charges and refunds. A charge belongs to an attempt by its `reference` (the
    attempt id we sent); a PSP refund to a refund by its `reference` (our refund id).
    `simulator_connectors`: the simulator's connector names that are ours (any charge on them
    that names none of our attempts is an unbacked charge). Returns the checks and figures."""
    offenders: dict[str, list[Offender]] = {name: [] for name in PSP_CHECKS}
    intents = list(intents)
    attempt_intent: dict[str, str] = {}
    for intent in intents:
        for attempt in intent["attempts"]:
            attempt_intent[attempt["public_id"]] = intent["public_id"]

    charges_by_attempt: dict[str, list[dict]] = defaultdict(list)
    ours = set(simulator_connectors)
    for charge in charges:
        if charge["reference"] in attempt_intent:
            charges_by_attempt[charge["reference"]].append(charge)
            ours.add(charge["connector"])
    payment_intent: dict[str, str] = {}  # PSP payment id -> our intent
    for reference, found in charges_by_attempt.items():
        for charge in found:
            payment_intent[charge["payment_id"]] = attempt_intent[reference]
    for charge in charges:
        if (
            charge["connector"] in ours
            and charge["reference"] not in attempt_intent
            and charge["status"] in LIVE_CHARGE
        ):
            offenders["psp_no_unbacked_charge"].append(
                Offender(
                    charge["id"],
                    f"on {charge['connector']}, reference {charge['reference']!r} is none of "
                    f"our attempts ({_money(charge)})",
                )
            )
    refunds_by_reference: dict[str, list[dict]] = defaultdict(list)
    refunds_by_intent: dict[str, list[dict]] = defaultdict(list)
    for refund in psp_refunds:
        owner = payment_intent.get(refund["payment_id"])
        if owner is not None:
            refunds_by_intent[owner].append(refund)
            refunds_by_reference[refund["reference"]].append(refund)

    compared = 0
    for intent in intents:
        compared += 1
        _compare_intent(intent, charges_by_attempt, refunds_by_intent, offenders)
        _compare_refunds(intent, refunds_by_reference, refunds_by_intent, offenders)

    results = [CheckResult.from_offenders(name, offenders[name]) for name in PSP_CHECKS]
    figures = {
        "charges": len(charges),
        "charges_ours": sum(len(v) for v in charges_by_attempt.values()),
        "refunds": len(psp_refunds),
        "intents_compared": compared,
        "connectors": sorted(ours),
    }
    return results, figures


def _compare_intent(intent, charges_by_attempt, refunds_by_intent, offenders) -> None:
    pi, status = intent["public_id"], intent["status"]
    charges = [c for a in intent["attempts"] for c in charges_by_attempt.get(a["public_id"], [])]
    live = [c for c in charges if c["status"] in LIVE_CHARGE]
    captured = [c for c in charges if c["amount_captured"] > 0]

    for attempt in intent["attempts"]:
        held = [
            c for c in charges_by_attempt.get(attempt["public_id"], []) if c["status"] != "declined"
        ]
        if len(held) > 1:
            offenders["psp_no_double_charge"].append(
                Offender(
                    pi,
                    f"attempt {attempt['public_id']} has {len(held)} PSP charges: "
                    + ", ".join(c["id"] for c in held),
                )
            )
    if len(live) > 1:
        offenders["psp_no_double_charge"].append(
            Offender(
                pi,
                f"{len(live)} live PSP charges: "
                + "; ".join(f"{c['id']} ({_money(c)})" for c in live),
            )
        )
    if len(captured) > 1:
        offenders["psp_no_double_capture"].append(
            Offender(
                pi,
                f"{len(captured)} captured PSP charges: "
                + "; ".join(f"{c['id']} ({c['amount_captured']})" for c in captured),
            )
        )

    if live and status not in ("succeeded", "requires_capture"):
        operation = f" ({intent['pending_operation']})" if intent["pending_operation"] else ""
        for charge in live:
            offenders["psp_no_unbacked_charge"].append(
                Offender(
                    pi, f"intent {status}{operation}; PSP charge {charge['id']}: {_money(charge)}"
                )
            )
    if status == "succeeded" and not captured:
        offenders["psp_no_uncharged_intent"].append(
            Offender(
                pi, f"succeeded (received {intent['amount_received']}); no captured PSP charge"
            )
        )
    if status == "requires_capture" and not any(c["status"] == "authorized" for c in charges):
        seen = "; ".join(f"{c['id']} {c['status']}" for c in charges) or "no charge"
        offenders["psp_no_uncharged_intent"].append(
            Offender(pi, f"requires_capture; no open PSP authorization ({seen})")
        )

    total_captured = sum(c["amount_captured"] for c in charges)
    if status == "succeeded" and captured and total_captured != intent["amount_received"]:
        offenders["psp_amounts_match"].append(
            Offender(
                pi,
                f"received {intent['amount_received']}, PSP captured {total_captured}",
            )
        )
    if status == "requires_capture":
        authorized = [c for c in charges if c["status"] == "authorized"]
        if authorized and sum(c["amount"] for c in authorized) != intent["amount_capturable"]:
            offenders["psp_amounts_match"].append(
                Offender(
                    pi,
                    f"capturable {intent['amount_capturable']}, PSP authorized "
                    f"{sum(c['amount'] for c in authorized)}",
                )
            )

    for charge in charges:
        if charge["amount_refunded"] > charge["amount_captured"]:
            offenders["psp_refunds_within_captured"].append(
                Offender(pi, f"PSP charge {charge['id']}: {_money(charge)}")
            )
    refunded_at_psp = sum(
        r["amount"] for r in refunds_by_intent.get(pi, []) if r["status"] != "failed"
    )
    if refunded_at_psp > total_captured:
        offenders["psp_refunds_within_captured"].append(
            Offender(pi, f"PSP refunds {refunded_at_psp} > PSP captured {total_captured}")
        )


def _compare_refunds(intent, refunds_by_reference, refunds_by_intent, offenders) -> None:
    pi = intent["public_id"]
    ours = {refund["public_id"] for refund in intent["refunds"]}
    for refund in intent["refunds"]:
        at_psp = refunds_by_reference.get(refund["public_id"], [])
        kept = [r for r in at_psp if r["status"] != "failed"]
        states = ", ".join(f"{r['id']} {r['status']}" for r in at_psp) or "none"
        if len(kept) > 1:
            offenders["psp_refunds_match"].append(
                Offender(refund["public_id"], f"{len(kept)} refunds at the PSP: {states}")
            )
        succeeded = [r for r in at_psp if r["status"] == "succeeded"]
        if refund["status"] == "succeeded" and not succeeded:
            offenders["psp_refunds_match"].append(
                Offender(refund["public_id"], f"succeeded here, at the PSP: {states} ({pi})")
            )
        if refund["status"] in ("failed", "canceled") and succeeded:
            offenders["psp_refunds_match"].append(
                Offender(
                    refund["public_id"], f"{refund['status']} here, at the PSP: {states} ({pi})"
                )
            )
        if succeeded and any(r["amount"] != refund["amount"] for r in succeeded):
            offenders["psp_refunds_match"].append(
                Offender(
                    refund["public_id"],
                    f"amount {refund['amount']} here, at the PSP: "
                    + ", ".join(f"{r['id']} {r['amount']}" for r in succeeded),
                )
            )
    psp = refunds_by_intent.get(pi, [])
    for refund in psp:
        if refund["reference"] not in ours:
            offenders["psp_refunds_match"].append(
                Offender(
                    pi,
                    f"PSP refund {refund['id']} ({refund['status']}, {refund['amount']}) "
                    f"names none of our refunds ({refund['reference']!r})",
                )
            )
    settled = all(r["status"] != "pending" for r in intent["refunds"]) and all(
        r["status"] != "pending" for r in psp
    )
    if settled:
        here = sum(r["amount"] for r in intent["refunds"] if r["status"] == "succeeded")
        there = sum(r["amount"] for r in psp if r["status"] == "succeeded")
        if here != there:
            offenders["psp_refunds_match"].append(
                Offender(pi, f"refunded {here} here, {there} at the PSP (succeeded refunds)")
            )
