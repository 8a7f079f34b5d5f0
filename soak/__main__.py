"""`python -m soak` (`make soak`): the fault soak. See docs/soak.md.

1. Brings up the production-shaped stack on its own PostgreSQL and Redis.
2. Sets a merchant up (keys, a Stripe- and an Adyen-dialect connector on the simulator, a 50/50
   routing profile with failover, a webhook endpoint served here).
3. Runs the mixed payment load while faults are injected on a schedule.
4. Clears the faults, waits (bounded) for the platform to settle, runs `manage.py money_audit`
   and the soak's own checks, prints the report.

Exit status: 0 every invariant held; 1 at least one broke; 2 the soak itself could not run."""

from __future__ import annotations

import json
import shutil
import sys
import time
import traceback
from collections import Counter

from soak import report as reporting
from soak.config import SoakConfig
from soak.faults import CLASS_NAMES, CLASSES, LOAD_FAULT, FaultRunner
from soak.load import Load
from soak.procs import StackError
from soak.receiver import MerchantEndpoint
from soak.report import Check
from soak.settle import wait_settled
from soak.setup import configure
from soak.stack import Stack


class Log:
    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def __call__(self, message: str) -> None:
        print(f"[soak {time.monotonic() - self.t0:7.1f}s] {message}", flush=True)


def run_audit(stack: Stack, log) -> tuple[int, dict | None]:
    logs = sorted(str(p) for p in stack.logs.glob("*.log"))
    logs += [str(stack.postgres.log), str(stack.redis.log)]
    args = [
        "money_audit",
        "--json",
        "--simulator-url",
        stack.sim_url,
        "--processing-grace",
        "0",
        "--unresolved-after",
        "0",
        "--overdue-after",
        "0",
    ]
    for path in logs:
        args += ["--log-file", path]
    import subprocess

    from soak.config import ROOT

    result = subprocess.run(
        [stack.python(), "manage.py", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        log(f"money audit did not produce JSON (exit {result.returncode}): {result.stderr[-2000:]}")
        return result.returncode, None


def soak_checks(*, config, runner, load_result, stats, stack, endpoint, db, settled) -> list[Check]:
    checks = []
    injected = Counter(i.fault for i in runner.injections if i.ok)
    missing = [
        f"{fault.name}: "
        + next((i.detail for i in runner.injections if i.fault == fault.name), "never scheduled")
        for fault in runner.classes
        if not injected[fault.name]
    ]
    missing += [
        f"{fault.name}: on, but no PSP request was hit"
        for fault in runner.classes
        if fault.name.startswith("psp_")
        and injected[fault.name]
        and not runner.psp_injected[fault.name]
    ]
    if load_result.capture_refusals == 0:
        missing.append(f"{LOAD_FAULT}: no payment used the capture-fails card")
    checks.append(
        Check("every_fault_injected", "every fault class injected at least once", missing)
    )
    back = [
        f"{i.fault} at {i.at:.0f} s: {i.detail}"
        for i in runner.injections
        if i.fault in ("kill_worker", "kill_web_worker") and not i.ok
    ]
    checks.append(
        Check(
            "killed_processes_came_back",
            "a killed worker or web worker was replaced within a minute",
            back,
        )
    )
    exits = []
    for process in (stack.web, stack.worker, stack.beat):
        for exit_ in process.unexpected_exits():
            if exit_.returncode == -9:
                # a process does not SIGKILL itself: someone else on the machine did (a broad
                # `pkill -9 -f celery`, the OOM killer); shown with the processes, not here
                continue
            exits.append(
                f"{process.name} exited with code {exit_.returncode} at {exit_.at:.0f} s "
                f"(see {process.log_path.name})"
            )
    checks.append(
        Check(
            "no_unexpected_process_exits",
            "no platform process died on its own (the supervisor restarted it)",
            exits,
        )
    )
    checks.append(
        Check(
            "no_card_numbers_in_responses",
            "no card number in any API response",
            stats.card_numbers_in_responses,
        )
    )
    checks.append(
        Check(
            "idempotent_replays_identical",
            "a request repeated with its Idempotency-Key got the first answer again",
            stats.replay_mismatches,
        )
    )
    checks.append(
        Check(
            "one_intent_per_key_and_order",
            "one payment intent per Idempotency-Key and per order",
            load_result.double_intent_for_key + db.get("orders_with_several_intents", []),
        )
    )
    missing_events = sorted(set(db.get("event_ids", [])) - set(endpoint.received))
    checks.append(
        Check(
            "merchant_received_every_event",
            "the merchant's endpoint received every event, correctly signed",
            [f"{e} never received" for e in missing_events]
            + [f"{e}: bad signature" for e in endpoint.bad_signatures],
        )
    )
    checks.append(
        Check(
            "platform_settled",
            f"the platform settled within {config.settle_seconds:g} s after the load",
            []
            if settled.settled
            else [f"{name}: {n}" for name, n in settled.remaining.items() if n] or [settled.why],
        )
    )
    return checks


def main(argv: list[str] | None = None) -> int:
    config = SoakConfig.from_env_and_args(argv)
    t0 = time.monotonic()
    log = Log(t0)
    unknown = sorted(set(config.faults) - set(CLASS_NAMES))
    if unknown:
        log(f"unknown fault classes: {', '.join(unknown)} (known: {', '.join(CLASS_NAMES)})")
        return 2
    classes = [c for c in CLASSES if not config.faults or c.name in config.faults]
    stack = Stack(config, t0)
    endpoint = MerchantEndpoint()
    runner: FaultRunner | None = None
    load: Load | None = None
    try:
        log(
            f"preparing the stack in {config.workdir}: PostgreSQL :{config.pg_port}, "
            f"Redis :{config.redis_port}, API :{config.api_port}, simulator :{config.sim_port}"
        )
        stack.prepare()
        stack.start()
        setup = configure(stack, endpoint)
        log(
            f"merchant {setup.merchant}: connectors {setup.connectors}, profile {setup.profile}, "
            f"endpoint {setup.endpoint} -> {endpoint.url}"
        )
        runner = FaultRunner(stack, endpoint, config, t0, classes, setup)
        planned = max(
            config.payments / config.rate, config.min_fault_cycles * runner.round_seconds()
        )
        if config.max_duration:
            planned = min(planned, config.max_duration)
        spacing = planned / max(config.payments, 1)
        tag = f"soak{int(time.time())}"
        load = Load(
            api_url=stack.api_url,
            secret_key=setup.secret_key,
            publishable_key=setup.publishable_key,
            clients=config.clients,
            payments=config.payments,
            budget=config.retry_budget_seconds,
            seed=config.seed,
            tag=tag,
        )
        log(
            f"load: {config.payments} payments over ~{planned:.0f} s "
            f"({config.payments / planned:.1f}/s, {config.clients} clients, seed {load.seed}); "
            f"faults: {len(classes)} classes every {config.fault_interval:g} s, "
            f"a round takes ~{runner.round_seconds():.0f} s"
        )
        load.keep_going = lambda: runner.rounds_done < config.min_fault_cycles
        runner.start()
        if config.max_duration:
            # a cap on the load: payments not started by then are not started
            import threading

            threading.Timer(config.max_duration, load.stop.set).start()
        result = load.run(spacing=spacing)
        log(f"load done: {result.started} payments in {result.seconds:.0f} s; stopping faults")
        runner.join()
        runner.clear_all()
        if not stack.simulator_alive():
            raise StackError("the PSP simulator died: its record of charges is lost")
        database_url = stack.env["DATABASE_URL"]
        settled = wait_settled(
            database_url,
            stack.sim_url,
            seconds=config.settle_seconds,
            stall_seconds=config.stall_seconds,
            log=log,
        )
        log(f"settle: {settled.why} after {settled.seconds:.0f} s; running the money audit")
        audit_status, audit = run_audit(stack, log)
        if audit is None:
            raise StackError("the money audit did not run (see above)")
        db = reporting.database_figures(database_url)
        sim = reporting.simulator_figures(stack.sim_url)
        checks = soak_checks(
            config=config,
            runner=runner,
            load_result=result,
            stats=load.stats,
            stack=stack,
            endpoint=endpoint,
            db=db,
            settled=settled,
        )
        faults: dict[str, dict] = {}
        for injection in runner.injections:
            entry = faults.setdefault(injection.fault, {"times": 0, "ok": 0, "detail": ""})
            entry["times"] += 1
            entry["ok"] += injection.ok
            entry["detail"] = injection.detail
        faults[f"{LOAD_FAULT} (load)"] = {
            "times": result.capture_refusals,
            "ok": result.capture_refusals,
            "detail": "captures of 4000009900000053 (authorises; the capture fails)",
        }
        stats = load.stats
        full = {
            "config_summary": f"{config.payments} payments, {len(classes)} fault classes, "
            f"{runner.rounds_done} full round(s), {time.monotonic() - t0:.0f} s in all",
            "clients": config.clients,
            "seed": load.seed,
            "load": {
                "started": result.started,
                "seconds": result.seconds,
                "scenarios": dict(result.scenarios),
                "races": dict(result.races),
                "left_processing_for_the_client": result.left_processing,
                "harness_errors": result.harness_errors,
            },
            "client": {
                "tries": stats.tries,
                "retries": stats.retries,
                "no_answer": stats.no_answer,
                "gave_up": dict(stats.gave_up),
                "replayed_5xx": dict(stats.replayed_5xx),
                "final": dict(stats.final),
                "replays_checked": stats.replays_checked,
            },
            "faults": faults,
            "psp_requests_faulted": dict(runner.psp_injected),
            "injections": [vars(i) for i in runner.injections],
            "processes": {
                p.name: {
                    "starts": p.starts,
                    "exits": [vars(e) for e in p.exits],
                }
                for p in (stack.web, stack.worker, stack.beat)
            },
            "merchant_endpoint": {
                "unique": len(endpoint.received),
                "deliveries": sum(endpoint.received.values()),
                "refused": endpoint.refused,
                "bad_signatures": len(endpoint.bad_signatures),
            },
            "database": {k: v for k, v in db.items() if k != "event_ids"},
            "simulator": sim,
            "settle": vars(settled),
            "audit": audit,
            "invariants": audit["checks"] + [c.as_dict() for c in checks],
            "logs": str(stack.logs),
        }
        text = reporting.render(full)
        print(text, flush=True)
        report_path = config.report_path or (config.workdir / "report.json")
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(full, indent=2, default=str))
        (config.workdir / "report.txt").write_text(text)
        broken = [c for c in full["invariants"] if c["status"] == "broken"]
        if audit_status not in (0, 1):
            raise StackError(f"the money audit exited with {audit_status}")
        return 1 if broken else 0
    except StackError as exc:
        log(f"SOAK COULD NOT RUN: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception:
        log(f"SOAK HARNESS ERROR:\n{traceback.format_exc()}")
        return 2
    finally:
        if load is not None:
            load.stop.set()
        if runner is not None:
            runner.stop.set()
        log("stopping the stack")
        try:
            stack.stop()
        except Exception as exc:
            log(f"while stopping: {exc}")
        endpoint.stop()
        if not config.keep:
            shutil.rmtree(stack.postgres.root, ignore_errors=True)
            shutil.rmtree(stack.redis.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
