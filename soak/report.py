"""What the soak saw: figures read from the soak's database and the simulator after the run,
the soak's own checks (those only a client, a supervisor or the merchant's endpoint can see),
and the text report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg
import requests

SHOWN = 15


@dataclass
class Check:
    name: str
    title: str
    offenders: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else ("broken" if self.offenders else "held")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "offender_count": len(self.offenders),
            "offenders": [{"id": o, "detail": ""} for o in self.offenders],
            "detail": self.skipped,
        }


def database_figures(database_url: str) -> dict:
    with psycopg.connect(database_url, connect_timeout=10) as conn:

        def rows(sql: str) -> list[tuple]:
            return conn.execute(sql).fetchall()

        return {
            "intents": {
                f"{status} ({dialect or 'no connector'})": n
                for status, dialect, n in rows(
                    "SELECT i.status, c.connector_type, count(*) FROM intents_paymentintent i "
                    "LEFT JOIN routing_connector c ON c.id = i.connector_id GROUP BY 1, 2 "
                    "ORDER BY 1, 2"
                )
            },
            "intent_statuses": dict(
                rows("SELECT status, count(*) FROM intents_paymentintent GROUP BY 1 ORDER BY 1")
            ),
            "attempts": {
                f"{outcome} ({dialect})": n
                for outcome, dialect, n in rows(
                    "SELECT a.outcome, c.connector_type, count(*) FROM intents_paymentattempt a "
                    "JOIN routing_connector c ON c.id = a.connector_id GROUP BY 1, 2 ORDER BY 1, 2"
                )
            },
            "failovers": rows(
                "SELECT count(*) FROM (SELECT intent_id FROM intents_paymentattempt "
                "GROUP BY intent_id HAVING count(DISTINCT connector_id) > 1) t"
            )[0][0],
            "needs_review": rows("SELECT count(*) FROM intents_paymentintent WHERE needs_review")[
                0
            ][0],
            "refunds": dict(rows("SELECT status, count(*) FROM intents_refund GROUP BY 1")),
            "events": rows("SELECT count(*) FROM events_event")[0][0],
            "event_ids": [r[0] for r in rows("SELECT public_id FROM events_event")],
            "deliveries": dict(
                rows("SELECT status, count(*) FROM events_webhookdelivery GROUP BY 1")
            ),
            "psp_notifications": dict(
                rows("SELECT status, count(*) FROM events_inboundwebhook GROUP BY 1")
            ),
            # what kept routing off a PSP: breaker transitions and error-rate disables
            "connector_changes": {
                f"{name} {action.removeprefix('connector.')}": n
                for name, action, n in rows(
                    "SELECT c.name, a.action, count(*) FROM core_auditlogentry a "
                    "JOIN routing_connector c ON c.public_id = a.object_id "
                    "WHERE a.action LIKE 'connector.breaker%' "
                    "OR a.action IN ('connector.auto_disabled', 'connector.auto_enabled') "
                    "GROUP BY 1, 2 ORDER BY 1, 2"
                )
            },
            "orders_with_several_intents": [
                f"order {order}: {intents}"
                for order, intents in rows(
                    "SELECT order_id, string_agg(public_id || ' ' || status, ', ' ORDER BY id) "
                    "FROM intents_paymentintent WHERE order_id <> '' "
                    "GROUP BY 1 HAVING count(*) > 1 ORDER BY 1"
                )
            ],
        }


def simulator_figures(sim_url: str) -> dict:
    try:
        deliveries = requests.get(f"{sim_url}/_sim/webhooks", timeout=30).json()["data"]
        charges = requests.get(f"{sim_url}/_sim/charges", timeout=30).json()["data"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        return {"error": str(exc)}
    return {
        "charges": dict(Counter(c["status"] for c in charges)),
        "webhooks": dict(Counter(d["status"] for d in deliveries)),
        "webhook_duplicates": sum(1 for d in deliveries if d.get("duplicate")),
    }


def _counts(values: dict | Counter, *, limit: int = 0) -> str:
    items = sorted(values.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if limit:
        items = items[:limit]
    return ", ".join(f"{name} {n}" for name, n in items) or "none"


def _exit_label(exit_: dict) -> str:
    if exit_["expected"]:
        return "killed by the soak"
    if exit_["returncode"] == -9:
        return "SIGKILLED from outside the soak"
    return "EXITED on its own"


def render(report: dict) -> str:
    lines: list[str] = []
    add = lines.append
    load, db, sim = report["load"], report.get("database", {}), report.get("simulator", {})
    add("")
    add("=" * 100)
    add(f"SOAK REPORT  ({report['config_summary']})")
    add("=" * 100)
    add(
        f"payments      {load['started']} started in {load['seconds']:.0f} s "
        f"({load['started'] / max(load['seconds'], 1):.1f}/s) by {report['clients']} clients; "
        f"seed {report['seed']}"
    )
    add(f"scenarios     {_counts(load['scenarios'])}")
    add(f"outcomes      {_counts(db.get('intent_statuses', {}))}")
    add(f"  by PSP      {_counts(db.get('intents', {}))}")
    add(
        f"attempts      {_counts(db.get('attempts', {}))}; {db.get('failovers', 0)} intents "
        f"failed over to the other PSP; {db.get('needs_review', 0)} flagged for review"
    )
    add(f"refunds       {_counts(db.get('refunds', {}))}")
    add(f"connectors    {_counts(db.get('connector_changes', {})) or 'no breaker transitions'}")
    client = report["client"]
    add(
        f"client        {client['tries']} requests, {client['retries']} retries, "
        f"{client['no_answer']} without an answer, gave up: {_counts(client['gave_up'])}; "
        f"stored 5xx replayed: {_counts(client['replayed_5xx'])}"
    )
    add(f"answers       {_counts(client['final'], limit=24)}")
    add(f"races         {_counts(load['races'], limit=12)}")
    add("faults        class                       times  detail (last)")
    for name, info in report["faults"].items():
        add(f"              {name:<27} {info['times']:>5}  {info['detail'][:62]}")
    for name, info in report["processes"].items():
        exits = ", ".join(
            f"{_exit_label(e)} at {e['at']:.0f} s (code {e['returncode']})" for e in info["exits"]
        )
        add(f"process       {name:<8} started {info['starts']}x; {exits or 'no exits'}")
    hooks = report["merchant_endpoint"]
    add(
        f"webhooks      platform -> merchant: {db.get('events', 0)} events, deliveries "
        f"{_counts(db.get('deliveries', {}))}; the merchant got {hooks['unique']} events in "
        f"{hooks['deliveries']} requests ({hooks['refused']} refused on purpose), "
        f"{hooks['bad_signatures']} bad signatures"
    )
    add(
        f"              PSP -> platform: {_counts(sim.get('webhooks', {}))}, "
        f"{sim.get('webhook_duplicates', 0)} duplicates sent; notifications "
        f"{_counts(db.get('psp_notifications', {}))}"
    )
    add(f"PSP record    charges {_counts(sim.get('charges', {}))}")
    settle = report["settle"]
    add(
        f"settle        {'settled' if settle['settled'] else 'NOT SETTLED'} after "
        f"{settle['seconds']:.0f} s ({settle['why']}); open: {_counts(settle['remaining'])}"
    )
    audit = report.get("audit") or {}
    if audit.get("figures"):
        figures = audit["figures"]
        ledger = figures.get("ledger", {})
        add(
            f"ledger        {ledger.get('journals')} journals, {ledger.get('accounts')} accounts, "
            f"{ledger.get('entries')} entries"
        )
        scan = figures.get("card_scan", {})
        add(
            f"card scan     {scan.get('columns')} columns, {scan.get('log_files')} log files "
            f"({scan.get('log_lines')} lines)"
        )
    add("")
    add(f"INVARIANTS    money audit #{audit.get('run', '?')} then the soak's own checks")
    for check in report["invariants"]:
        label = {"held": "HELD   ", "broken": "BROKEN ", "skipped": "SKIPPED"}[check["status"]]
        count = f" ({check['offender_count']})" if check["status"] == "broken" else ""
        add(f"  {label} {check['name']}{count}: {check['title']}")
        if check["status"] == "skipped":
            add(f"            {check['detail']}")
        for offender in check["offenders"][:SHOWN]:
            detail = f"  {offender['detail']}" if offender.get("detail") else ""
            add(f"            {offender['id']}{detail}")
        if check["offender_count"] > SHOWN:
            add(f"            … and {check['offender_count'] - SHOWN} more (report JSON)")
    if load.get("harness_errors"):
        add(
            f"harness errors ({len(load['harness_errors'])}), first: "
            f"{load['harness_errors'][0][-400:]}"
        )
    broken = [c["name"] for c in report["invariants"] if c["status"] == "broken"]
    add("")
    add(f"RESULT        {'BROKEN: ' + ', '.join(broken) if broken else 'every invariant held'}")
    add(f"logs          {report['logs']}")
    return "\n".join(lines)
