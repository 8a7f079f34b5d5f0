"""The short fault soak, as `make test` runs it: the production-shaped stack on its own
PostgreSQL and Redis (free ports), a few hundred payments while every fault class is injected
once, then the money audit (docs/soak.md). It must never fail for a reason of its own (exit 2),
and every invariant must hold.

KNOWN_BROKEN lists the invariants that today's code still breaks under faults, each because of a
defect of issue 11 that other work is fixing (see the comments). While one of them breaks, the
test is an expected failure (xfail) naming what broke; an invariant outside the list breaking is
a plain failure. Empty the list as the fixes land: then the test demands every invariant."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

KNOWN_BROKEN = {
    # issue 11 item 5: a refused capture (the capture-fails card, a 503 on capture) and a web
    # process killed or a database connection cut between the PSP call and the write that
    # records its answer leave the intent processing for good: nothing sweeps them
    "intents_not_processing": "item 5: intents wedged in processing, no sweep",
    # items 4 and 5: Adyen 5xx outcomes stay unknown (the pspReference in the error body stops
    # the idempotent re-send), and attempts a killed process or a cut connection left pending
    "attempts_resolved": "items 4 and 5: Adyen unknowns, attempts left pending",
    "psp_no_unbacked_charge": "items 3 and 5: the PSP holds a charge for a processing intent",
    # item 5 (race): a capture racing a cancel leaves the PSP canceled and our intent
    # requires_capture (the capture is reverted by the PSP's notification)
    "psp_no_uncharged_intent": "item 5: capture/cancel race",
    # item 8: the Celery worker dies on a Redis restart ('NoneType' object has no attribute
    # 'hostname'); the soak's supervisor restarts it and reports the exit
    "no_unexpected_process_exits": "item 8: the worker dies when Redis restarts",
    # follows from the above: the wedged intents never settle
    "platform_settled": "follows from items 5 and 8",
    # item 3: a lost response whose inquiry gets a non-authoritative answer is marked failed
    # while the PSP holds the charge (may or may not happen in a short run)
    "psp_amounts_match": "item 3: charged payment marked failed",
    # PSP notifications for wedged intents keep retrying
    "inbound_webhooks_processed": "follows from item 5",
    # item 7: a 4xx after the intent was created (400 no_eligible_connector while both
    # breakers are open) releases the Idempotency-Key, so the merchant's retry with the same
    # key creates a second intent for the order
    "one_intent_per_key_and_order": "item 7: a 4xx after an effect releases the key",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_short_soak_holds_every_invariant():
    for earlier in (ROOT / ".local").glob("soak-test-*"):
        shutil.rmtree(earlier, ignore_errors=True)  # keep only the last run's logs and report
    workdir = ROOT / ".local" / f"soak-test-{os.getpid()}"
    report_path = workdir / "report.json"
    command = [
        sys.executable,
        "-m",
        "soak",
        "--payments",
        os.environ.get("SOAK_TEST_PAYMENTS", "250"),
        "--rate",
        "3",
        "--settle-seconds",
        "150",
        "--stall-seconds",
        "40",
        "--api-port",
        str(_free_port()),
        "--sim-port",
        str(_free_port()),
        "--pg-port",
        str(_free_port()),
        "--redis-port",
        str(_free_port()),
        "--workdir",
        str(workdir),
        "--report",
        str(report_path),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAK_")}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1100
    )
    output = result.stdout[-12000:] + result.stderr[-4000:]
    assert result.returncode in (0, 1), (
        f"the soak could not run (exit {result.returncode}):\n{output}"
    )

    report = json.loads(report_path.read_text())
    checks = {check["name"]: check for check in report["invariants"]}
    # the soak did what it promises: every fault class under load, the PSP side compared
    assert checks["every_fault_injected"]["status"] == "held", output
    assert report["audit"]["psp_record_url"], output
    assert not report["load"]["harness_errors"], report["load"]["harness_errors"][:3]

    broken = {name for name, check in checks.items() if check["status"] == "broken"}
    unexpected = broken - set(KNOWN_BROKEN)
    assert not unexpected, f"invariants broken: {sorted(unexpected)}\n{output}"
    assert result.returncode == (1 if broken else 0)
    if broken:
        pytest.xfail(
            "known defects of issue 11 still break: "
            + "; ".join(f"{name} ({KNOWN_BROKEN[name]})" for name in sorted(broken))
        )
