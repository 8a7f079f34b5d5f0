"""The mixed payment load: each payment is one scenario of a merchant's integration, from
tokenizing the card to its capture, cancel or refunds, with concurrent operations on the same
intent and idempotency-key retries. Payments start on a paced schedule (this is a soak, not a
benchmark) and run on a pool of client threads."""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from soak import cards
from soak.client import Api, ClientStats, Reply

PROCESSING_WAIT_SECONDS = 25.0  # how long a merchant waits for an unknown outcome to resolve


@dataclass
class LoadResult:
    started: int = 0
    scenarios: Counter = field(default_factory=Counter)
    steps: Counter = field(default_factory=Counter)  # "capture 409 capture_failed", …
    intents: list[str] = field(default_factory=list)
    capture_refusals: int = 0  # captures of the capture-fails card
    races: Counter = field(default_factory=Counter)  # "capture+cancel: 200/409", …
    double_intent_for_key: list[str] = field(default_factory=list)
    left_processing: list[str] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seconds: float = 0.0


class Payment:
    """One payment's life, driven as a merchant's backend would."""

    def __init__(self, load: Load, n: int, sk: Api, pk: Api, rng: random.Random) -> None:
        self.load, self.n, self.sk, self.pk, self.rng = load, n, sk, pk, rng
        self.result = load.result

    def key(self, step: str) -> str:
        return f"{self.load.tag}-{self.n}-{step}"

    def step(self, reply: Reply) -> Reply:
        with self.result.lock:
            self.result.steps[reply.label()] += 1
        return reply

    def amount(self) -> int:
        return self.rng.choice([self.rng.randint(100, 5_000), self.rng.randint(5_000, 60_000)])

    def tokenize(self, number: str) -> str | None:
        body = {
            "type": "card",
            "card": {
                "number": number,
                "exp_month": 12,
                "exp_year": 2034,
                "cvc": cards.cvc_for(number),
            },
            "billing_details": {"name": "Soak Shopper", "email": "shopper@example.com"},
        }
        reply = self.step(
            self.pk.call("tokenize", "POST", "/v1/payment_methods", body, key=self.key("pm"))
        )
        if not reply.ok:
            # a merchant's checkout page would ask for the card again: a new request, new key
            reply = self.step(
                self.pk.call("tokenize", "POST", "/v1/payment_methods", body, key=self.key("pm2"))
            )
        return reply.body["id"] if reply.ok else None

    def create(
        self,
        number: str,
        capture_method: str,
        *,
        amount: int | None = None,
        replay: bool | None = None,
    ) -> tuple[Reply | None, str | None, dict | None]:
        pm = self.tokenize(number)
        if pm is None:
            return None, None, None
        body = {
            "amount": amount or self.amount(),
            "currency": "usd" if self.rng.random() < 0.2 else "eur",
            "capture_method": capture_method,
            "payment_method": pm,
            "confirm": True,
            "order_id": f"{self.load.tag}-{self.n}",
            "metadata": {"soak": self.load.tag},
        }
        key = self.key("create")
        reply = self.step(self.sk.call("create", "POST", "/v1/payment_intents", body, key=key))
        if replay if replay is not None else self.rng.random() < 0.15:
            self.sk.check_replay(reply, "POST", "/v1/payment_intents", body, key)
        intent = self.intent_of(reply)
        if intent is not None:
            with self.result.lock:
                self.result.intents.append(intent["id"])
        return reply, (intent or {}).get("id"), intent

    @staticmethod
    def intent_of(reply: Reply) -> dict | None:
        body = reply.body if isinstance(reply.body, dict) else None
        if body is None:
            return None
        if body.get("object") == "payment_intent":
            return body
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("payment_intent"), dict):
            return error["payment_intent"]
        return None

    def settled(self, intent: dict) -> dict:
        """Waits (a while) for an intent left `processing` by an unknown outcome."""
        deadline = time.monotonic() + PROCESSING_WAIT_SECONDS
        while intent.get("status") == "processing" and time.monotonic() < deadline:
            time.sleep(1.0)
            reply = self.sk.call(
                "retrieve", "GET", f"/v1/payment_intents/{intent['id']}", budget=10
            )
            if reply.ok:
                intent = reply.body
        if intent.get("status") == "processing":
            with self.result.lock:
                self.result.left_processing.append(intent["id"])
        return intent

    def capture(
        self,
        intent_id: str,
        amount: int | None = None,
        tag: str = "capture",
        api: Api | None = None,
    ) -> Reply:
        body = {} if amount is None else {"amount_to_capture": amount}
        return self.step(
            (api or self.sk).call(
                "capture",
                "POST",
                f"/v1/payment_intents/{intent_id}/capture",
                body,
                key=self.key(tag),
            )
        )

    def cancel(self, intent_id: str, tag: str = "cancel", api: Api | None = None) -> Reply:
        return self.step(
            (api or self.sk).call(
                "cancel", "POST", f"/v1/payment_intents/{intent_id}/cancel", {}, key=self.key(tag)
            )
        )

    def refund(
        self, intent_id: str, amount: int | None = None, tag: str = "refund", api: Api | None = None
    ) -> Reply:
        body = {"payment_intent": intent_id}
        if amount is not None:
            body["amount"] = amount
        return self.step(
            (api or self.sk).call("refund", "POST", "/v1/refunds", body, key=self.key(tag))
        )

    def race(self, kind: str, replies: list[Reply]) -> None:
        outcome = ", ".join(r.label() for r in replies)
        with self.result.lock:
            self.result.races[outcome] += 1

    def concurrently(self, *calls: Callable[[Api], Reply]) -> list[Reply]:
        """Runs each call on its own connection at the same moment."""
        replies: list[Reply | None] = [None] * len(calls)
        barrier = threading.Barrier(len(calls))

        def run(index: int, call) -> None:
            api = Api(self.sk.base_url, self.sk.key, self.sk.stats, self.sk.budget)
            barrier.wait(5)
            replies[index] = call(api)

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        return [r for r in replies if r is not None]


# --------------------------------------------------------------------------- scenarios


def automatic(p: Payment) -> None:
    _reply, pi, intent = p.create(p.rng.choice(cards.APPROVE), "automatic")
    if intent is None or p.settled(intent).get("status") != "succeeded":
        return
    roll = p.rng.random()
    if roll < 0.2:
        p.refund(pi)  # full
    elif roll < 0.35:
        p.refund(pi, max(1, intent["amount"] // 3))
    elif roll < 0.45:  # two partial refunds at once that together exceed the amount
        part = intent["amount"] * 6 // 10
        replies = p.concurrently(
            lambda api: p.refund(pi, part, "refund-a", api),
            lambda api: p.refund(pi, part, "refund-b", api),
        )
        p.race("refund+refund", replies)


def manual_capture(p: Payment) -> None:
    _reply, pi, intent = p.create(p.rng.choice(cards.APPROVE), "manual")
    if intent is None or p.settled(intent).get("status") != "requires_capture":
        return
    captured = p.capture(pi)
    if captured.ok and p.rng.random() < 0.25:
        p.refund(pi, max(1, intent["amount"] // 2))


def partial_capture(p: Payment) -> None:
    _reply, pi, intent = p.create(p.rng.choice(cards.APPROVE), "manual")
    if intent is None or p.settled(intent).get("status") != "requires_capture":
        return
    amount = max(1, intent["amount"] * p.rng.randint(30, 90) // 100)
    captured = p.capture(pi, amount)
    if captured.ok and p.rng.random() < 0.3:
        p.refund(pi, max(1, amount // 2))


def cancel(p: Payment) -> None:
    _reply, pi, intent = p.create(p.rng.choice(cards.APPROVE), "manual")
    if intent is None or p.settled(intent).get("status") != "requires_capture":
        return
    p.cancel(pi)


def race(p: Payment) -> None:
    """Concurrent operations on one intent: whatever wins, the money must add up."""
    _reply, pi, intent = p.create(p.rng.choice(cards.APPROVE), "manual")
    if intent is None or p.settled(intent).get("status") != "requires_capture":
        return
    kind = p.rng.choice(["capture+cancel", "capture+capture", "cancel+cancel"])
    calls = {
        "capture+cancel": (
            lambda api: p.capture(pi, None, "race-capture", api),
            lambda api: p.cancel(pi, "race-cancel", api),
        ),
        "capture+capture": (
            lambda api: p.capture(pi, None, "race-capture-a", api),
            lambda api: p.capture(pi, max(1, intent["amount"] // 2), "race-capture-b", api),
        ),
        "cancel+cancel": (
            lambda api: p.cancel(pi, "race-cancel-a", api),
            lambda api: p.cancel(pi, "race-cancel-b", api),
        ),
    }[kind]
    p.race(kind, p.concurrently(*calls))


def decline(p: Payment) -> None:
    number = p.rng.choice(cards.SOFT_DECLINE if p.rng.random() < 0.6 else cards.HARD_DECLINE)
    p.create(number, "automatic")


def capture_refused(p: Payment) -> None:
    """The PSP authorises, then refuses the capture; the merchant then gives up (cancels)."""
    _reply, pi, intent = p.create(cards.CAPTURE_FAILS, "manual")
    if intent is None or p.settled(intent).get("status") != "requires_capture":
        return
    with p.result.lock:
        p.result.capture_refusals += 1
    captured = p.capture(pi)
    if not captured.ok:
        p.cancel(pi)


def refund_fails(p: Payment) -> None:
    _reply, pi, intent = p.create(cards.REFUND_FAILS, "automatic")
    if intent is None or p.settled(intent).get("status") != "succeeded":
        return
    p.refund(pi)


def slow_issuer(p: Payment) -> None:
    p.create(cards.SLOW, p.rng.choice(["automatic", "manual"]))


def same_key_twice(p: Payment) -> None:
    """A merchant's retry racing its first request: one key, one intent."""
    pm = p.tokenize(p.rng.choice(cards.APPROVE))
    if pm is None:
        return
    body = {
        "amount": p.amount(),
        "currency": "eur",
        "capture_method": "automatic",
        "payment_method": pm,
        "confirm": True,
        "order_id": f"{p.load.tag}-{p.n}",
    }
    key = p.key("create")
    replies = p.concurrently(
        lambda api: p.step(api.call("create", "POST", "/v1/payment_intents", body, key=key)),
        lambda api: p.step(api.call("create", "POST", "/v1/payment_intents", body, key=key)),
    )
    ids = {(p.intent_of(r) or {}).get("id") for r in replies if p.intent_of(r)}
    with p.result.lock:
        p.result.intents.extend(i for i in ids if i)
        if len(ids) > 1:
            p.result.double_intent_for_key.append(f"key {key}: {sorted(ids)}")


SCENARIOS: list[tuple[str, float, Callable[[Payment], None]]] = [
    ("automatic capture (+ refunds)", 30, automatic),
    ("manual capture (+ refund)", 14, manual_capture),
    ("partial capture (+ refund)", 10, partial_capture),
    ("cancel", 9, cancel),
    ("concurrent operations on one intent", 9, race),
    ("declined", 8, decline),
    ("capture refused by the PSP", 5, capture_refused),
    ("refund failed by the PSP", 4, refund_fails),
    ("slow issuer", 3, slow_issuer),
    ("same Idempotency-Key twice at once", 8, same_key_twice),
]


class Load:
    def __init__(
        self,
        *,
        api_url: str,
        secret_key: str,
        publishable_key: str,
        clients: int,
        payments: int,
        budget: float,
        seed: int | None,
        tag: str,
    ) -> None:
        self.api_url, self.secret_key, self.publishable_key = api_url, secret_key, publishable_key
        self.clients, self.payments, self.budget = clients, payments, budget
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.tag = tag
        self.stats = ClientStats()
        self.result = LoadResult()
        self._next = 0
        self._lock = threading.Lock()
        self.stop = threading.Event()
        # after `payments`, keep paying while this says so (until every fault class has been
        # injected under load), up to twice as many payments
        self.keep_going: Callable[[], bool] = lambda: False

    def _take(self) -> int | None:
        with self._lock:
            if self.stop.is_set() or self._next >= 2 * self.payments:
                return None
            if self._next >= self.payments and not self.keep_going():
                return None
            n = self._next
            self._next += 1
            return n

    def run(self, *, spacing: float) -> LoadResult:
        """Starts payment n at n * spacing seconds; returns when every payment is done."""
        started = time.monotonic()
        weights = [w for _, w, _ in SCENARIOS]

        def client(index: int) -> None:
            sk = Api(self.api_url, self.secret_key, self.stats, self.budget)
            pk = Api(self.api_url, self.publishable_key, self.stats, self.budget)
            while (n := self._take()) is not None:
                delay = started + n * spacing - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                rng = random.Random(self.seed * 1_000_003 + n)
                name, _, scenario = rng.choices(SCENARIOS, weights=weights)[0]
                with self.result.lock:
                    self.result.started += 1
                    self.result.scenarios[name] += 1
                try:
                    scenario(Payment(self, n, sk, pk, rng))
                except Exception:  # a harness bug must not stop the soak: it is reported
                    with self.result.lock:
                        self.result.harness_errors.append(
                            f"payment {n} ({name}): {traceback.format_exc(limit=3)}"
                        )

        threads = [
            threading.Thread(target=client, args=(i,), name=f"client-{i}", daemon=True)
            for i in range(self.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.result.seconds = time.monotonic() - started
        return self.result
