"""Runs one command and restarts it whenever it exits, until told to stop.

    python scripts/supervise.py [--name NAME] [--stop-timeout S] [--max-backoff S] -- CMD ...

`make run` wraps every Procfile process in it, so a crashed worker (or web, beat, simulator)
comes back by itself instead of honcho stopping the whole platform when one process exits.

- The command runs in its own process group. When it exits, whatever it left behind in that
  group (gunicorn workers, Celery pool processes) is killed, and it is started again after a
  delay: 1 s, doubling on each quick failure up to --max-backoff (30 s); back to 1 s once a run
  has lasted 60 s.
- SIGTERM, SIGINT or SIGHUP stops it: the signal is passed to the command's group (SIGTERM
  for SIGHUP), the group is killed after --stop-timeout seconds if it is still there, and the
  supervisor exits with the command's status. The default timeout (4 s) is below honcho's 5 s
  before it kills everything, so the command always gets its own graceful shutdown first.
- On Linux the command also gets SIGTERM if the supervisor itself is killed (PR_SET_PDEATHSIG),
  so nothing outlives a `kill -9` of the supervisor.

Production does not use this: systemd restarts each process (docs/operations.md).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

STABLE_AFTER_S = 60.0
PR_SET_PDEATHSIG = 1


def log(name: str, message: str) -> None:
    print(f"supervise[{name}]: {message}", file=sys.stderr, flush=True)


def _child_setup() -> None:
    # in the child, before exec: default signal dispositions (honcho ignores SIGINT/SIGTERM in
    # the processes it forks), and a SIGTERM when the supervisor dies
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _signal_group(pgid: int, signum: int) -> bool:
    """Sends to every process in the group; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class Supervisor:
    def __init__(self, name: str, cmd: list[str], stop_timeout: float, max_backoff: float):
        self.name = name
        self.cmd = cmd
        self.stop_timeout = stop_timeout
        self.max_backoff = max_backoff
        self.stop_signal: int | None = None
        self.child: subprocess.Popen | None = None

    def _on_signal(self, signum: int, _frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signal.SIGTERM if signum == signal.SIGHUP else signum
            log(self.name, f"{signal.Signals(signum).name} received: stopping")
            if self.child is not None and self.child.poll() is None:
                _signal_group(self.child.pid, self.stop_signal)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.stop_signal is None and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _reap_group(self, pgid: int, grace: float) -> None:
        # the leader has exited: its leftovers get SIGTERM, then SIGKILL after `grace`
        if not _signal_group(pgid, signal.SIGTERM):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)

    def _stop_child(self) -> int:
        """The stop signal was sent to the group; waits, then kills what is left."""
        child = self.child
        assert child is not None
        try:
            child.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log(self.name, f"still running after {self.stop_timeout:g} s: killing it")
            _signal_group(child.pid, signal.SIGKILL)
            child.wait()
        self._reap_group(child.pid, grace=0.5)
        return child.returncode

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        backoff = 1.0
        while self.stop_signal is None:
            started = time.monotonic()
            try:
                self.child = subprocess.Popen(
                    self.cmd, start_new_session=True, preexec_fn=_child_setup
                )
            except OSError as exc:
                log(self.name, f"cannot start {self.cmd[0]}: {exc}")
                return 127
            log(self.name, f"started pid {self.child.pid}")
            if self.stop_signal is not None:  # a signal arrived while it was starting
                _signal_group(self.child.pid, self.stop_signal)
            while True:
                try:
                    returncode = self.child.wait(0.2)
                    break
                except subprocess.TimeoutExpired:
                    if self.stop_signal is not None:
                        return self._finish(self._stop_child())
            if self.stop_signal is not None:
                return self._finish(self._stop_child())
            self._reap_group(self.child.pid, grace=2.0)
            ran = time.monotonic() - started
            if ran >= STABLE_AFTER_S:
                backoff = 1.0
            log(self.name, f"{_describe(returncode)} after {ran:.1f} s; restart in {backoff:g} s")
            self._sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        return 0

    def _finish(self, returncode: int) -> int:
        log(self.name, f"stopped ({_describe(returncode)})")
        # killed by the stop signal we passed on is a clean stop
        if returncode < 0 and -returncode in (signal.SIGTERM, signal.SIGINT):
            return 0
        return returncode if returncode >= 0 else 128 - returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", help="shown in the log lines (default: the command)")
    parser.add_argument("--stop-timeout", type=float, default=4.0)
    parser.add_argument("--max-backoff", type=float, default=30.0)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given (put it after --)")
    name = args.name or os.path.basename(cmd[0])
    return Supervisor(name, cmd, args.stop_timeout, args.max_backoff).run()


if __name__ == "__main__":
    sys.exit(main())
