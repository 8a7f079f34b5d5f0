"""CPU time per process group from /proc (Linux), for "CPU per request" figures.

A snapshot sums utime+stime of each group's processes: the given root pids and all their
descendants (gunicorn master + workers, celery + pool children), and the PostgreSQL backends
connected to one database (matched on the backend's process title). The machine line is the
busy time of all CPUs from /proc/stat, so `other` = machine - known groups shows how much CPU
something else on the box used during the run (another benchmark, an editor, a test suite).

Stdlib only: the load generator imports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds) of one process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    # after "pid (comm) ": state ppid ... utime(14th overall => index 11 here) stime(12)
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores summed."""
    line = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in line[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / TICKS, total / TICKS


def busy_share(seconds: float) -> float:
    """Share of the machine's CPU time that was busy over the next `seconds`."""
    busy0, total0 = machine_busy_seconds()
    time.sleep(seconds)
    busy1, total1 = machine_busy_seconds()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


def wait_for_quiet(
    max_wait: float, threshold: float, before: Callable[[], None] | None = None
) -> float:
    """Other work on this 2-core machine (tests, other benches, the previous scenario's
    processes winding down) skews latency figures: wait (bounded) until the machine is below
    15 % busy over a 1.5 s window AND the 1-minute load average is low (the load average lags
    by a minute, so it alone would either wait too long or too little). `before`: e.g. a
    PostgreSQL CHECKPOINT, so that what earlier benchmarks left dirty in its buffers is flushed
    now, not as a write storm in the middle of the measurement (it stalls commits' fsyncs).
    Returns the 1-minute load average, to report with the results."""
    if before is not None:
        before()
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        if busy_share(1.5) < 0.15 and os.getloadavg()[0] <= threshold:
            break
    return round(os.getloadavg()[0], 2)


def snapshot(roots: dict[str, list[int]], db_name: str | None = None) -> dict[str, float]:
    """CPU seconds so far per group: {group: seconds, ..., "db": s, "machine": s}."""
    table: dict[int, tuple[int, float]] = {}
    for pid in _all_pids():
        found = _stat(pid)
        if found is not None:
            table[pid] = found
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)

    result: dict[str, float] = {}
    seen: set[int] = set()
    for group, pids in roots.items():
        total, stack = 0.0, [p for p in pids if p in table]
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            total += table[pid][1]
            stack.extend(children.get(pid, []))
        result[group] = total
    if db_name:
        marker = f" {db_name} "
        result["db"] = sum(
            cpu
            for pid, (_, cpu) in table.items()
            if pid not in seen and (cmd := _cmdline(pid)).startswith("postgres:") and marker in cmd
        )
    result["machine"], result["machine_total"] = machine_busy_seconds()
    return result


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per-group CPU seconds used between two snapshots (>= 0; backends that vanished count 0)."""
    return {k: max(0.0, after.get(k, 0.0) - before.get(k, 0.0)) for k in after}


def per_process() -> dict[int, tuple[str, float]]:
    """{pid: (command line, cpu seconds)} of every process."""
    found = {}
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is not None:
            found[pid] = (_cmdline(pid)[:80] or f"[{pid}]", stat[1])
    return found


def top_consumers(before: dict, after: dict, n: int = 3) -> list[tuple[str, float]]:
    """The n processes that used the most CPU seconds between two per_process() calls."""
    used = [(cmd, cpu - before.get(pid, (cmd, 0.0))[1]) for pid, (cmd, cpu) in after.items()]
    return sorted((u for u in used if u[1] > 0), key=lambda u: -u[1])[:n]
