"""One circuit breaker per connector, its state in Redis so every process sees the same state.

Built on pybreaker (`CircuitBreaker` + `CircuitRedisStorage`). What this module adds:

- a PSP-aware failure test: timeouts, connection errors and HTTP 5xx count; declines, 3DS and
  4xx validation answers never do (`counts_as_failure`);
- results instead of exceptions: `ConnectorBreaker.call` always returns a `PSPResult`. A call the
  breaker refuses (open, or half-open with every trial slot taken) was never sent, so it comes
  back as `ERROR` with `retryable_elsewhere=True`, and the caller may fail over;
- a bounded half-open state: at most `half_open_max_calls` trial calls at a time across all
  processes (a Redis counter with a TTL, so a crashed trial frees its slot);
- no process-wide lock held across the PSP call (pybreaker's `call` holds one, which would
  serialize every call to a connector inside a process);
- an operator override: `force("open" | "closed")`, `force(None)` to return to automatic;
- `on_transition(connector_id, old, new)` for the caller's audit log, called only by the process
  that made the transition.

A leaf like the adapters: it takes a Redis client and a connector id, never Django settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pybreaker
import redis

from apps.psp_adapters.contract import Outcome, PSPResult

logger = logging.getLogger(__name__)

STATE_CLOSED = pybreaker.STATE_CLOSED
STATE_OPEN = pybreaker.STATE_OPEN
STATE_HALF_OPEN = pybreaker.STATE_HALF_OPEN
FORCED_MODES = ("open", "closed")

NAMESPACE = "psp-breaker"
# transport failures without an HTTP answer (apps.psp_adapters.http classification)
TRANSPORT_FAILURE_CODES = frozenset(
    {"connect_timeout", "connect_failed", "read_timeout", "connection_lost"}
)

Transition = Callable[[str, str, str], None]  # (connector id, old state, new state)
# The caller's own Redis bookkeeping for an answered call (health, success rates): it queues
# its commands on the pipeline that also counts a failure, and returns what takes their
# replies. One round trip per answer for both.
Bookkeeping = Callable[[PSPResult, "redis.client.Pipeline"], Callable[[list], None]]
# The caller's Redis read before the call (the card's CVC): queued on the pipeline that reads
# the breaker's state, it gets its own replies, or the RedisError when that round trip failed
# (the caller then degrades as it would on its own). One round trip before the call for both.
Preread = Callable[["redis.client.Pipeline"], Callable[[list | redis.RedisError], None]]


def counts_as_failure(result: PSPResult) -> bool:
    """True when the PSP (or the way to it) misbehaved: 5xx, timeouts, connection errors.
    Declines, 3DS, 4xx validation and idempotency conflicts are answers, never failures."""
    if result.http_status is not None:
        return result.http_status >= 500
    return (
        result.outcome in (Outcome.ERROR, Outcome.UNKNOWN)
        and result.raw_code in TRANSPORT_FAILURE_CODES
    )


def rejected_result(reason: str = "circuit_open") -> PSPResult:
    """What a call refused by the breaker returns: nothing was sent, so failover is safe."""
    return PSPResult(
        outcome=Outcome.ERROR,
        raw_code=reason,
        raw_message="circuit breaker open: the request was not sent to the PSP",
        retryable_elsewhere=True,
    )


def keys_for(connector_id: str) -> dict[str, str]:
    """The Redis keys of one connector's breaker (pybreaker's names inside our namespace)."""
    base = f"{NAMESPACE}:{connector_id}:pybreaker"
    return {
        "state": f"{base}:state",
        "fail_counter": f"{base}:fail_counter",
        "success_counter": f"{base}:success_counter",
        "opened_at": f"{base}:opened_at",
        "trials": f"{NAMESPACE}:{connector_id}:trials",
        "forced": f"{NAMESPACE}:{connector_id}:forced",
    }


class _CountedFailure(Exception):
    """Carries a failed PSPResult through pybreaker's exception-based accounting."""

    def __init__(self, result: PSPResult):
        super().__init__(result.raw_code)
        self.result = result


class _TrialLimitReached(pybreaker.CircuitBreakerError):
    pass


class _BoundedHalfOpenState(pybreaker.CircuitHalfOpenState):
    """Half-open with a shared, bounded number of concurrent trial calls."""

    def call(self, func, *args, **kwargs):
        breaker: _RedisCircuitBreaker = self._breaker  # type: ignore[assignment]
        if not breaker.claim_trial():
            raise _TrialLimitReached("half-open: every trial slot is taken")
        try:
            return super().call(func, *args, **kwargs)
        finally:
            breaker.release_trial()  # never raises: a lost slot expires with its TTL


class _TolerantRedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, with two changes:

    - it tolerates Redis errors at setup too (it does for every other operation): a Redis
      outage must not turn into failed payments, the breaker then fails open;
    - fewer round trips per call: `ConnectorBreaker.call` reads state, failure counter and
      override in one MGET and pins them for the call (per thread); the INCR of a failure
      returns the new count, which the threshold check then uses; a success does not write a
      counter that was already zero."""

    _UNPINNED = object()

    def __init__(self, *args, **kwargs):
        self._local = threading.local()
        super().__init__(*args, **kwargs)

    def _initialize_redis_state(self, state: str) -> None:
        try:
            super()._initialize_redis_state(state)
        except redis.RedisError:
            self.logger.warning("breaker storage: Redis unavailable at setup")

    def pin(self, *, state: str | None, fail_counter: int) -> None:
        self._local.state = state
        self._local.fail_counter = fail_counter

    def unpin(self) -> None:
        self._local.__dict__.clear()

    def _take(self, name: str):
        value = getattr(self._local, name, self._UNPINNED)
        if value is not self._UNPINNED:
            setattr(self._local, name, self._UNPINNED)  # once: later reads go to Redis
        return value

    @property
    def state(self) -> str:
        pinned = self._take("state")
        if pinned is not self._UNPINNED and pinned is not None:
            return pinned
        return pybreaker.CircuitRedisStorage.state.fget(self)

    @state.setter
    def state(self, state: str) -> None:
        pybreaker.CircuitRedisStorage.state.fset(self, state)

    def pin_incremented(self, counter: int) -> None:
        """The failure was already counted (INCR in the caller's pipeline): its result."""
        self._local.incremented = counter

    def increment_counter(self) -> None:
        incremented = self._take("incremented")
        if incremented is not self._UNPINNED:
            self._local.counter = incremented
            return
        try:
            self._local.counter = int(self._redis.incr(self._namespace("fail_counter")))
        except redis.RedisError:
            self.logger.exception("RedisError")

    @property
    def counter(self) -> int:
        pinned = self._take("counter")
        if pinned is not self._UNPINNED and pinned is not None:
            return pinned
        return pybreaker.CircuitRedisStorage.counter.fget(self)

    def reset_counter(self) -> None:
        if self._take("fail_counter") == 0:
            return  # zero when this call started: nothing to reset
        super().reset_counter()


class _RedisCircuitBreaker(pybreaker.CircuitBreaker):
    def __init__(
        self,
        *,
        client: redis.Redis,
        connector_id: str,
        half_open_max_calls: int,
        trial_ttl_seconds: int,
        on_transition: Transition | None,
        **kwargs: Any,
    ):
        self._client = client
        self._connector_id = connector_id
        self._keys = keys_for(connector_id)
        self._half_open_max_calls = half_open_max_calls
        self._trial_ttl_seconds = trial_ttl_seconds
        self._on_transition = on_transition
        storage = _TolerantRedisStorage(
            STATE_CLOSED, client, namespace=f"{NAMESPACE}:{connector_id}"
        )
        super().__init__(state_storage=storage, throw_new_error_on_trip=False, **kwargs)

    def _create_new_state(self, new_state, prev_state=None, notify=False):
        if new_state == STATE_HALF_OPEN:
            return _BoundedHalfOpenState(self, prev_state=prev_state, notify=notify)
        return super()._create_new_state(new_state, prev_state=prev_state, notify=notify)

    # pybreaker holds self._lock across the guarded call; the state lives in Redis, so only
    # transitions need it, and a slow PSP must not serialize every thread of the process.
    def call(self, func, *args, **kwargs):
        return self.state.call(func, *args, **kwargs)

    # transitions: clear the trial slots, tell the caller (once, by the process that made it)
    def open(self) -> bool:
        old = self._state.name
        result = super().open()
        self._clear_trials()
        self._notify(old, STATE_OPEN)
        return result

    def half_open(self) -> None:
        # the trial slots were cleared when the breaker opened; clearing them here would let a
        # second process that raced into half-open take a slot already taken
        old = self._state.name
        super().half_open()
        self._notify(old, STATE_HALF_OPEN)

    def close(self) -> None:
        old = self._state.name
        super().close()
        self._clear_trials()
        self._notify(old, STATE_CLOSED)

    def _clear_trials(self) -> None:
        try:
            self._client.delete(self._keys["trials"])
        except redis.RedisError:
            logger.exception("breaker %s: could not clear trial slots", self._connector_id)

    def _notify(self, old: str, new: str) -> None:
        if self._on_transition is None or old == new:
            return
        try:
            self._on_transition(self._connector_id, old, new)
        except Exception:  # an audit hiccup must never break a payment
            logger.exception("breaker transition callback failed for %s", self._connector_id)

    def claim_trial(self) -> bool:
        pipe = self._client.pipeline(transaction=False)
        pipe.incr(self._keys["trials"])
        pipe.expire(self._keys["trials"], self._trial_ttl_seconds)
        taken, _ = pipe.execute()
        if taken > self._half_open_max_calls:
            self._client.decr(self._keys["trials"])
            return False
        return True

    def release_trial(self) -> None:
        # never below zero: a transition may have deleted the counter meanwhile
        try:
            self._client.eval(_RELEASE_TRIAL, 1, self._keys["trials"])
        except redis.RedisError:
            logger.exception("breaker %s: could not release a trial slot", self._connector_id)


_RELEASE_TRIAL = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class BreakerSnapshot:
    """What routing needs to know about a breaker, read in one round trip."""

    state: str  # closed | open | half-open
    forced: str | None  # "open" | "closed" | None
    opened_at: int | None  # unix seconds
    fail_counter: int
    trials_in_flight: int
    reset_timeout: float
    half_open_max_calls: int

    @property
    def allows_calls(self) -> bool:
        """False when a call would be refused: routing skips the connector."""
        if self.forced == "open":
            return False
        if self.forced == "closed" or self.state == STATE_CLOSED:
            return True
        if self.state == STATE_OPEN and not self.reset_timeout_elapsed:
            return False
        return self.trials_in_flight < self.half_open_max_calls

    @property
    def reset_timeout_elapsed(self) -> bool:
        return self.opened_at is None or time.time() >= self.opened_at + self.reset_timeout

    @property
    def effective_state(self) -> str:
        if self.forced:
            return f"forced_{self.forced}"
        if self.state == STATE_OPEN and self.reset_timeout_elapsed:
            return STATE_HALF_OPEN  # the next call will be a trial
        return self.state

    @property
    def skip_reason(self) -> str:
        if self.forced == "open":
            return "breaker_forced_open"
        if self.state == STATE_OPEN and not self.reset_timeout_elapsed:
            return "breaker_open"
        return "breaker_half_open_busy"


class ConnectorBreaker:
    """The breaker of one connector. Cheap to keep per process (see `breaker_for`)."""

    def __init__(
        self,
        *,
        client: redis.Redis | None = None,
        redis_url: str | None = None,
        connector_id: str,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        trial_ttl_seconds: int = 60,
        on_transition: Transition | None = None,
    ):
        if client is None:
            if not redis_url:
                raise ValueError("pass a Redis client or a Redis URL")
            client = redis.Redis.from_url(redis_url)
        self.connector_id = connector_id
        self.client = client
        self.keys = keys_for(connector_id)
        self.half_open_max_calls = half_open_max_calls
        self.reset_timeout = reset_timeout
        self._breaker = _RedisCircuitBreaker(
            client=client,
            connector_id=connector_id,
            half_open_max_calls=half_open_max_calls,
            trial_ttl_seconds=trial_ttl_seconds,
            on_transition=on_transition,
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            success_threshold=success_threshold,
            name=connector_id,
        )

    # --- the guarded call --------------------------------------------------------------------

    def call(
        self,
        func: Callable[[], PSPResult],
        *,
        bookkeeping: Bookkeeping | None = None,
        preread: Preread | None = None,
    ) -> PSPResult:
        """Runs one PSP call under the breaker and returns its result. Exceptions raised by
        `func` count as failures and propagate. `bookkeeping` runs for every answer the PSP
        gave (not for calls the breaker refused, nor for exceptions), in the round trip that
        counts a failure; `preread` before anything else, in the round trip that reads the
        breaker's state (even when the call is then refused)."""
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.mget(keys["forced"], keys["state"], keys["fail_counter"])
        take_preread = preread(pipe) if preread is not None else None
        try:
            replies = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            replies = [exc]
            if take_preread is not None:
                take_preread(exc)
        else:
            if take_preread is not None:
                take_preread(replies[1:])
        if isinstance(replies[0], Exception):
            logger.error(
                "breaker %s: Redis unavailable, calling through",
                self.connector_id,
                exc_info=replies[0],
            )
            return self._answered(func(), counted=False, bookkeeping=bookkeeping)
        forced, state, fail_counter = replies[0]
        if forced == b"open":
            return rejected_result("circuit_forced_open")
        if forced == b"closed":
            return self._answered(func(), counted=False, bookkeeping=bookkeeping)
        storage: _TolerantRedisStorage = self._breaker._state_storage  # type: ignore[assignment]
        storage.pin(state=state.decode() if state else None, fail_counter=int(fail_counter or 0))
        try:
            return self._call_guarded(func, bookkeeping)
        finally:
            storage.unpin()

    def _answered(
        self, result: PSPResult, *, counted: bool, bookkeeping: Bookkeeping | None
    ) -> PSPResult:
        """One round trip after an answer: the failure's INCR (its result pinned for
        pybreaker's threshold check, which then does not INCR again) and the bookkeeping.
        Never raises: bookkeeping must not turn an answer into an error."""
        failure = counted and counts_as_failure(result)
        if not failure and bookkeeping is None:
            return result
        try:
            pipe = self.client.pipeline(transaction=False)
            if failure:
                pipe.incr(self.keys["fail_counter"])
            take_replies = bookkeeping(result, pipe) if bookkeeping is not None else None
            replies = pipe.execute(raise_on_error=False)
            if failure:
                counter = replies.pop(0)
                if isinstance(counter, int):
                    storage: _TolerantRedisStorage = self._breaker._state_storage  # type: ignore[assignment]
                    storage.pin_incremented(counter)
            if take_replies is not None:
                take_replies(replies)
        except Exception:
            # a failure not counted here is counted by pybreaker's own INCR, if Redis allows
            logger.exception("breaker %s: could not record the answer", self.connector_id)
        return result

    def _call_guarded(
        self, func: Callable[[], PSPResult], bookkeeping: Bookkeeping | None
    ) -> PSPResult:
        answered: list[PSPResult] = []

        def guarded() -> PSPResult:
            result = func()
            answered.append(result)  # first: once the PSP answered, it is never called again
            self._answered(result, counted=True, bookkeeping=bookkeeping)
            if counts_as_failure(result):
                raise _CountedFailure(result)
            return result

        try:
            return self._breaker.call(guarded)
        except _CountedFailure as failure:
            return failure.result
        except pybreaker.CircuitBreakerError:
            return answered[0] if answered else rejected_result()
        except redis.RedisError:
            # the PSP must never be called twice for one call: once it answered, that is final
            logger.exception("breaker %s: Redis error around the call", self.connector_id)
            return answered[0] if answered else func()

    # --- state -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._breaker.current_state

    @property
    def fail_counter(self) -> int:
        return self._breaker.fail_counter

    def snapshot(self) -> BreakerSnapshot:
        return snapshots(
            self.client,
            [self.connector_id],
            reset_timeout=self.reset_timeout,
            half_open_max_calls=self.half_open_max_calls,
        )[self.connector_id]

    def force(self, mode: str | None) -> None:
        """Operator override: "open" refuses every call, "closed" lets every call through and
        stops counting; None returns to automatic operation, starting closed."""
        if mode is not None and mode not in FORCED_MODES:
            raise ValueError(f"mode must be one of {FORCED_MODES} or None")
        if mode is None:
            self.client.delete(self.keys["forced"])
            self._breaker.close()
        else:
            self.client.set(self.keys["forced"], mode)

    def forced(self) -> str | None:
        value = self.client.get(self.keys["forced"])
        return value.decode() if value else None

    def reset(self) -> None:
        """Closed, counters at zero, no override (used when a connector is re-enabled)."""
        self.client.delete(self.keys["forced"])
        self._breaker.close()


def snapshots(
    client: redis.Redis,
    connector_ids: Iterable[str],
    *,
    reset_timeout: float,
    half_open_max_calls: int,
    extra_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """Every listed breaker's state in one MGET. `extra_keys` ride along in the same round trip
    and come back under the key "_extra" as a list of raw values."""
    ids = list(connector_ids)
    extra = list(extra_keys)
    fields = ("state", "forced", "opened_at", "fail_counter", "trials")
    keys = [keys_for(cid)[f] for cid in ids for f in fields]
    values = client.mget(extra + keys) if (keys or extra) else []
    result: dict[str, Any] = {"_extra": values[: len(extra)]}
    values = values[len(extra) :]
    for index, cid in enumerate(ids):
        state, forced, opened_at, fail_counter, trials = values[index * 5 : index * 5 + 5]
        result[cid] = BreakerSnapshot(
            state=state.decode() if state else STATE_CLOSED,
            forced=forced.decode() if forced else None,
            opened_at=int(opened_at) if opened_at else None,
            fail_counter=int(fail_counter or 0),
            trials_in_flight=int(trials or 0),
            reset_timeout=reset_timeout,
            half_open_max_calls=half_open_max_calls,
        )
    return result


_breakers: dict[tuple, ConnectorBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(
    *,
    client: redis.Redis,
    connector_id: str,
    fail_max: int = 5,
    reset_timeout: float = 30.0,
    half_open_max_calls: int = 1,
    on_transition: Transition | None = None,
) -> ConnectorBreaker:
    """The process's breaker object for a connector (state is in Redis; the object is a view)."""
    key = (id(client), connector_id, fail_max, reset_timeout, half_open_max_calls, on_transition)
    with _breakers_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = _breakers[key] = ConnectorBreaker(
                client=client,
                connector_id=connector_id,
                fail_max=fail_max,
                reset_timeout=reset_timeout,
                half_open_max_calls=half_open_max_calls,
                on_transition=on_transition,
            )
        return breaker
