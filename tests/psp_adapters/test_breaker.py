"""The per-connector circuit breaker: state in Redis, PSP-aware failure counting, bounded
half-open trials, operator overrides, and one state shared by separate OS processes.

Needs Redis (TEST_REDIS_URL, default db 15), not Django. Every test uses its own connector id."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.psp_adapters.breaker import ConnectorBreaker, counts_as_failure, keys_for
from apps.psp_adapters.contract import Outcome, PSPResult

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]

APPROVED = PSPResult(outcome=Outcome.APPROVED, http_status=200)
SOFT_DECLINE = PSPResult(outcome=Outcome.SOFT_DECLINE, decline_code="do_not_honor", http_status=402)
HARD_DECLINE = PSPResult(outcome=Outcome.HARD_DECLINE, decline_code="stolen_card", http_status=402)
REJECTED_422 = PSPResult(outcome=Outcome.ERROR, http_status=422, retryable_elsewhere=True)
IN_FLIGHT_409 = PSPResult(outcome=Outcome.UNKNOWN, http_status=409)
HTTP_503 = PSPResult(outcome=Outcome.ERROR, http_status=503, retryable_elsewhere=True)
HTTP_500 = PSPResult(outcome=Outcome.UNKNOWN, http_status=500)
READ_TIMEOUT = PSPResult(outcome=Outcome.UNKNOWN, raw_code="read_timeout")
CONNECT_FAILED = PSPResult(
    outcome=Outcome.ERROR, raw_code="connect_failed", retryable_elsewhere=True
)


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


@pytest.fixture
def connector_id(client):
    cid = f"mca_test_{uuid.uuid4().hex[:12]}"
    yield cid
    keys = list(client.scan_iter(f"psp-breaker:{cid}:*"))
    if keys:
        client.delete(*keys)


def _breaker(client, connector_id, **kwargs) -> ConnectorBreaker:
    kwargs.setdefault("fail_max", 3)
    kwargs.setdefault("reset_timeout", 60)
    return ConnectorBreaker(client=client, connector_id=connector_id, **kwargs)


class Calls:
    def __init__(self, result: PSPResult):
        self.result, self.count = result, 0

    def __call__(self) -> PSPResult:
        self.count += 1
        return self.result


@pytest.mark.parametrize(
    "result",
    [
        HTTP_503,
        HTTP_500,
        READ_TIMEOUT,
        CONNECT_FAILED,
        PSPResult(outcome=Outcome.ERROR, http_status=504),
    ],
)
def test_5xx_timeouts_and_connection_errors_count(result):
    assert counts_as_failure(result)


@pytest.mark.parametrize(
    "result", [APPROVED, SOFT_DECLINE, HARD_DECLINE, REJECTED_422, IN_FLIGHT_409]
)
def test_declines_and_answers_never_count(result):
    assert not counts_as_failure(result)


def test_opens_after_consecutive_failures_and_refuses_without_calling(client, connector_id):
    breaker = _breaker(client, connector_id)
    failing = Calls(HTTP_503)
    assert breaker.call(failing) is HTTP_503
    assert breaker.call(Calls(SOFT_DECLINE)) is SOFT_DECLINE  # a decline resets the count
    assert breaker.fail_counter == 0
    for _ in range(3):
        assert breaker.call(failing) is HTTP_503  # the failing call's own result comes back
    assert breaker.state == "open"
    refused = Calls(APPROVED)
    result = breaker.call(refused)
    assert refused.count == 0
    assert (result.outcome, result.retryable_elsewhere, result.raw_code) == (
        Outcome.ERROR,
        True,
        "circuit_open",
    )
    assert not breaker.snapshot().allows_calls


class Bookkeeping:
    """A caller's bookkeeping: counts each answer in Redis on the breaker's pipeline."""

    def __init__(self, key: str):
        self.key, self.answers, self.replies = key, [], []

    def __call__(self, result, pipe):
        self.answers.append(result)
        pipe.incr(self.key)
        return self.replies.append


def test_bookkeeping_shares_the_failure_count_round_trip_and_counts_once(client, connector_id):
    breaker = _breaker(client, connector_id)
    seen = Bookkeeping(f"psp-breaker:{connector_id}:test-answers")
    round_trips = []
    real_execute = redis.client.Pipeline.execute

    def execute(pipe, *args, **kwargs):
        # the last part of each command's key: which counters went in this round trip
        round_trips.append([command[1].rsplit(":", 1)[-1] for command, _ in pipe.command_stack])
        return real_execute(pipe, *args, **kwargs)

    redis.client.Pipeline.execute = execute
    try:
        for expected in (1, 2):
            assert breaker.call(Calls(HTTP_503), bookkeeping=seen) is HTTP_503
            # counted exactly once (pybreaker did not INCR again), still closed below fail_max
            assert (breaker.fail_counter, breaker.state) == (expected, "closed")
        assert breaker.call(Calls(APPROVED), bookkeeping=seen) is APPROVED
        assert breaker.fail_counter == 0  # a success resets the count
        for _ in range(3):
            breaker.call(Calls(HTTP_503), bookkeeping=seen)
        assert breaker.state == "open"  # after exactly fail_max consecutive failures
        refused = breaker.call(Calls(APPROVED), bookkeeping=seen)
    finally:
        redis.client.Pipeline.execute = real_execute

    assert refused.raw_code == "circuit_open"
    # every answer went to the bookkeeping, the refused call (nothing sent) did not; a failure's
    # INCR and the bookkeeping went in one round trip, a success's bookkeeping alone
    assert seen.answers == [HTTP_503, HTTP_503, APPROVED, HTTP_503, HTTP_503, HTTP_503]
    failure, success = ["fail_counter", "test-answers"], ["test-answers"]
    with_bookkeeping = [keys for keys in round_trips if "test-answers" in keys]
    assert with_bookkeeping == [failure, failure, success, failure, failure, failure]
    assert seen.replies == [[1], [2], [3], [4], [5], [6]]


def test_bookkeeping_runs_when_forced_closed_and_never_breaks_the_answer(client, connector_id):
    breaker = _breaker(client, connector_id)
    breaker.force("closed")
    seen = Bookkeeping(f"psp-breaker:{connector_id}:test-answers")
    assert breaker.call(Calls(HTTP_503), bookkeeping=seen) is HTTP_503
    assert seen.answers == [HTTP_503] and breaker.fail_counter == 0  # forced: not counted

    def broken(result, pipe):
        raise RuntimeError("bookkeeping bug")

    breaker.force(None)
    failing = Calls(HTTP_503)
    assert breaker.call(failing, bookkeeping=broken) is HTTP_503
    assert failing.count == 1  # answered once, never re-sent
    assert breaker.fail_counter == 1  # counted by pybreaker's own INCR instead


def test_declines_never_open_it(client, connector_id):
    breaker = _breaker(client, connector_id)
    for _ in range(10):
        breaker.call(Calls(HARD_DECLINE))
        breaker.call(Calls(REJECTED_422))
    assert breaker.state == "closed"


def test_half_open_allows_a_bounded_number_of_trials(client, connector_id):
    breaker = _breaker(client, connector_id, fail_max=1, reset_timeout=1, half_open_max_calls=2)
    breaker.call(Calls(HTTP_503))
    assert breaker.state == "open"
    time.sleep(1.1)
    assert breaker.snapshot().effective_state == "half-open"
    release = threading.Event()
    started = threading.Barrier(3)

    def slow_trial() -> PSPResult:
        started.wait(timeout=5)
        release.wait(timeout=5)
        return APPROVED

    results = []
    trials = [
        threading.Thread(target=lambda: results.append(breaker.call(slow_trial))) for _ in range(2)
    ]
    for thread in trials:
        thread.start()
    started.wait(timeout=5)  # both trials are inside the PSP call now
    third = Calls(APPROVED)
    refused = breaker.call(third)
    assert third.count == 0 and refused.raw_code == "circuit_open"
    assert not breaker.snapshot().allows_calls  # routing skips it while trials run
    release.set()
    for thread in trials:
        thread.join(timeout=5)
    assert results == [APPROVED, APPROVED]
    assert breaker.state == "closed"


def test_a_failed_trial_opens_it_again(client, connector_id):
    breaker = _breaker(client, connector_id, fail_max=1, reset_timeout=1)
    breaker.call(Calls(HTTP_503))
    time.sleep(1.1)
    assert breaker.call(Calls(READ_TIMEOUT)) is READ_TIMEOUT
    assert breaker.state == "open"
    assert breaker.call(Calls(APPROVED)).raw_code == "circuit_open"


def test_operators_force_it_open_or_closed(client, connector_id):
    breaker = _breaker(client, connector_id, fail_max=1)
    breaker.force("open")
    call = Calls(APPROVED)
    assert breaker.call(call).raw_code == "circuit_forced_open" and call.count == 0
    breaker.force("closed")
    for _ in range(5):
        assert breaker.call(Calls(HTTP_503)) is HTTP_503  # passes, never trips
    assert breaker.call(Calls(APPROVED)) is APPROVED
    breaker.force(None)
    assert (breaker.state, breaker.forced()) == ("closed", None)


def test_transitions_are_reported_once(client, connector_id):
    seen = []
    breaker = _breaker(
        client, connector_id, fail_max=2, reset_timeout=1, on_transition=lambda *t: seen.append(t)
    )
    breaker.call(Calls(HTTP_503))
    breaker.call(Calls(HTTP_503))
    time.sleep(1.1)
    breaker.call(Calls(APPROVED))
    assert seen == [
        (connector_id, "closed", "open"),
        (connector_id, "open", "half-open"),
        (connector_id, "half-open", "closed"),
    ]


def test_redis_down_means_calls_go_through_once():
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    breaker = ConnectorBreaker(client=dead, connector_id="mca_nowhere", fail_max=1)
    call = Calls(APPROVED)
    assert breaker.call(call) is APPROVED
    assert call.count == 1


class Preread:
    """A caller's read before the call (the vault's CVC): what it got, and in which round trip."""

    def __init__(self, key: str):
        self.key, self.got = key, []

    def __call__(self, pipe):
        pipe.get(self.key)
        return self.got.append


def test_the_preread_shares_the_state_read_and_comes_before_the_call(client, connector_id):
    breaker = _breaker(client, connector_id)
    key = f"psp-breaker:{connector_id}:test-cvc"
    client.set(key, b"sealed")
    preread = Preread(key)
    round_trips = []
    real_execute = redis.client.Pipeline.execute

    def execute(pipe, *args, **kwargs):
        round_trips.append([command[0] for command, _ in pipe.command_stack])
        return real_execute(pipe, *args, **kwargs)

    def call():
        assert preread.got == [[b"sealed"]]  # read before the PSP is called
        return APPROVED

    redis.client.Pipeline.execute = execute
    try:
        assert breaker.call(call, preread=preread) is APPROVED
    finally:
        redis.client.Pipeline.execute = real_execute
    assert round_trips == [["MGET", "GET"]]

    breaker.force("open")  # refused: the read still happened, nothing was sent
    refused = Calls(APPROVED)
    assert breaker.call(refused, preread=preread).raw_code == "circuit_forced_open"
    assert refused.count == 0 and preread.got[-1] == [b"sealed"]


def test_redis_down_hands_the_preread_its_error_and_calls_through_once():
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    breaker = ConnectorBreaker(client=dead, connector_id="mca_nowhere", fail_max=1)
    preread = Preread("anything")
    call = Calls(APPROVED)
    assert breaker.call(call, preread=preread) is APPROVED
    assert call.count == 1
    assert len(preread.got) == 1 and isinstance(preread.got[0], redis.ConnectionError)


_OTHER_PROCESS = textwrap.dedent("""
    import sys
    import redis
    from apps.psp_adapters.breaker import ConnectorBreaker
    from apps.psp_adapters.contract import Outcome, PSPResult

    url, connector_id, action = sys.argv[1:4]
    breaker = ConnectorBreaker(client=redis.Redis.from_url(url), connector_id=connector_id,
                               fail_max=3, reset_timeout=60)
    if action == "fail":
        for _ in range(3):
            breaker.call(lambda: PSPResult(outcome=Outcome.ERROR, http_status=503))
    calls = []
    result = breaker.call(lambda: calls.append(1) or PSPResult(outcome=Outcome.APPROVED,
                                                               http_status=200))
    print(breaker.state, result.raw_code or result.outcome.value, len(calls))
""")


def _other_process(connector_id: str, action: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, REDIS_URL, connector_id, action],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.split()


def test_two_os_processes_share_one_breaker(client, connector_id):
    # failures in another process open the breaker this process sees
    assert _other_process(connector_id, "fail") == ["open", "circuit_open", "0"]
    here = _breaker(client, connector_id)
    assert here.state == "open"
    call = Calls(APPROVED)
    assert here.call(call).raw_code == "circuit_open" and call.count == 0
    # and an operator override made here is what the other process obeys
    here.force(None)
    assert _other_process(connector_id, "call") == ["closed", "approved", "1"]
    assert client.exists(keys_for(connector_id)["state"])
