"""The short fault soak, as `make test` runs it: the production-shaped stack on its own
PostgreSQL and Redis (free ports), a few hundred payments while every fault class is injected
once, then the money audit (docs/soak.md). It must never fail for a reason of its own (exit 2),
and every invariant must hold.

KNOWN_BROKEN would list invariants a known, filed defect still breaks (the test is then an
expected failure naming them); it is empty: every invariant must hold."""

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

# Invariants a short soak may break for a known, filed reason (each with the issue that fixes
# it); empty: every invariant must hold.
KNOWN_BROKEN: dict[str, str] = {}


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
