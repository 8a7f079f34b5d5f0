"""The merchant's side of the soak: an API client that behaves as a careful integration does
(every POST carries an Idempotency-Key; connection errors, 5xx, 429 and
`idempotency_key_in_use` are retried with the same key, with backoff, within a budget), and
that checks what it gets back: no card number in any response, a replay byte-for-byte equal to
the first answer."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from soak.cards import ALL_NUMBERS

RETRYABLE_CODES = {"idempotency_key_in_use"}


@dataclass
class Reply:
    op: str
    status: int | None  # None: no answer at all (the connection failed or timed out)
    body: dict | None
    raw: bytes = b""
    replayed: bool = False
    tries: int = 1
    gave_up: bool = False

    @property
    def code(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code") or self.body["error"].get("type") or "")
        return ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def label(self) -> str:
        if self.status is None:
            return f"{self.op} no answer"
        return f"{self.op} {self.status}" + (f" {self.code}" if self.code else "")


@dataclass
class ClientStats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter = field(default_factory=Counter)  # "create 200", "capture 409 capture_failed"
    final: Counter = field(default_factory=Counter)  # the last answer of each call
    tries: int = 0
    retries: int = 0
    no_answer: int = 0
    gave_up: Counter = field(default_factory=Counter)
    replayed_5xx: Counter = field(default_factory=Counter)  # a stored 5xx replayed under a key
    card_numbers_in_responses: list[str] = field(default_factory=list)
    replay_mismatches: list[str] = field(default_factory=list)
    replays_checked: int = 0

    def add(self, **counts) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class Api:
    """One client thread's connection to the API with one key."""

    def __init__(self, base_url: str, key: str, stats: ClientStats, budget: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.stats = stats
        self.budget = budget
        self.session = requests.Session()

    def call(
        self,
        op: str,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        key: str | None = None,
        retry: bool = True,
        budget: float | None = None,
    ) -> Reply:
        deadline = time.monotonic() + (self.budget if budget is None else budget)
        delay = 0.5
        tries = 0
        while True:
            tries += 1
            reply = self._once(op, method, path, body, key)
            reply.tries = tries
            retryable = (
                reply.status is None
                or reply.status >= 500
                or reply.status == 429
                or (reply.status == 409 and reply.code in RETRYABLE_CODES)
            ) and not reply.replayed  # a stored answer is final: asking again replays it again
            # a POST without an Idempotency-Key is never sent twice: it could act twice
            safe = method == "GET" or key is not None
            if not (retryable and retry and safe):
                break
            if time.monotonic() + delay > deadline:
                reply.gave_up = True
                with self.stats.lock:
                    self.stats.gave_up[op] += 1
                break
            with self.stats.lock:
                self.stats.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
        with self.stats.lock:
            self.stats.final[reply.label()] += 1
        return reply

    def _once(self, op: str, method: str, path: str, body: dict | None, key: str | None) -> Reply:
        headers = {"Authorization": f"Bearer {self.key}"}
        if key:
            headers["Idempotency-Key"] = key
        try:
            response = self.session.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers=headers,
                timeout=45,
            )
        except requests.RequestException:
            self.session.close()
            self.session = requests.Session()
            with self.stats.lock:
                self.stats.tries += 1
                self.stats.no_answer += 1
                self.stats.answers[f"{op} no answer"] += 1
            return Reply(op, None, None)
        raw = response.content
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        reply = Reply(op, response.status_code, parsed, raw, replayed)
        leaked = [number for number in ALL_NUMBERS if number.encode() in raw]
        with self.stats.lock:
            self.stats.tries += 1
            self.stats.answers[reply.label()] += 1
            if replayed and response.status_code >= 500:
                self.stats.replayed_5xx[reply.label()] += 1
            for number in leaked:
                self.stats.card_numbers_in_responses.append(
                    f"{method} {path}: {number[:6]}…{number[-4:]}"
                )
        return reply

    def check_replay(self, first: Reply, method: str, path: str, body: dict, key: str) -> None:
        """Sends the same request with the same key again: the answer must be the first one,
        byte for byte, marked as a replay."""
        if first.status is None or not (200 <= first.status < 300 or first.status == 402):
            return  # other answers are not stored under the key (docs/architecture.md)
        again = self._once(first.op + " replay", method, path, body, key)
        with self.stats.lock:
            self.stats.replays_checked += 1
        if again.status is None or again.status >= 500 or again.status == 409:
            return  # the platform was down or busy: nothing to compare
        if again.status != first.status or again.raw != first.raw or not again.replayed:
            with self.stats.lock:
                self.stats.replay_mismatches.append(
                    f"{method} {path} key {key}: first {first.status}, replay {again.status}"
                    f"{'' if again.replayed else ' (not marked as a replay)'}"
                )
