"""A tiny timer wheel: run short callables at a given time on one background thread.

Used for everything the simulator does "later": webhook deliveries and their retries, releasing
a held reorder window, delayed payout and refund outcomes. The thread starts on first use, so a
gunicorn worker starts it after the fork, never in the master.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("psp_simulator.scheduler")


class Scheduler:
    def __init__(self, name: str = "psp-sim-scheduler") -> None:
        self._name = name
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, job: Callable[[], None]) -> None:
        """Run `job` at monotonic time `when`; jobs due at the same time run in call order."""
        with self._cv:
            heapq.heappush(self._heap, (when, next(self._counter), job))
            self._ensure_thread()
            self._cv.notify()

    def call_later(self, delay_s: float, job: Callable[[], None]) -> None:
        self.call_at(time.monotonic() + max(0.0, delay_s), job)

    def pending(self) -> int:
        with self._cv:
            return len(self._heap)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                _, _, job = heapq.heappop(self._heap)
            try:
                job()
            except Exception:  # a failing job must not stop the clock for the others
                logger.exception("scheduled job failed")
