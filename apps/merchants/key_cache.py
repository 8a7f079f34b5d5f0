"""Each process's short-lived copy of the API keys it authenticated, so a request does not pay
a database query to learn who is calling (issue 16: per-request overhead).

A copy is served only while the process's invalidation listener is subscribed
(apps.core.invalidation), only if loaded in the listener's current epoch, and for at most
API_KEY_CACHE_SECONDS (default 10). Any change to a key or a merchant (revocation, roll,
expiry, live mode switched, a deletion; through a service, the admin or anywhere a model is
saved) drops the copies in this process at once and, through Redis pub/sub, in every other
process, before and again after the change commits. When Redis is away, nothing is cached and
every request reads the database, as before. Every request gets its own model instances
(rebuilt from the cached column values), so no request can change what another one sees.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction

from apps.core import invalidation
from apps.core.redis_client import checkout_redis
from apps.merchants.models import ApiKey, Merchant

logger = logging.getLogger(__name__)
TOPIC = "apikeys"

_KEY_FIELDS = [f.attname for f in ApiKey._meta.concrete_fields]
_MERCHANT_FIELDS = [f.attname for f in Merchant._meta.concrete_fields]


@dataclass(frozen=True)
class _Entry:
    key_values: tuple
    merchant_values: tuple
    loaded_at: float
    epoch: int


_cache: dict[str, _Entry] = {}
_lock = threading.Lock()
_generation = [0]  # bumped by every invalidation: a load that saw one in flight is not stored


def _ttl() -> float:
    return float(getattr(settings, "API_KEY_CACHE_SECONDS", 10))


def _invalidated(message: str) -> None:
    with _lock:
        _generation[0] += 1
        if message == "*":
            _cache.clear()
        else:
            _cache.pop(message, None)


invalidation.listener.register(TOPIC, _invalidated)


def lookup(key_hash: str) -> tuple[ApiKey | None, int]:
    """(a fresh ApiKey with its merchant, or None; the token to pass to `store` after a
    database read)."""
    listener = invalidation.listener
    listener.ensure_started()
    with _lock:
        token = _generation[0]
        entry = _cache.get(key_hash)
    if (
        entry is None
        or not listener.connected
        or entry.epoch != listener.epoch
        or time.monotonic() - entry.loaded_at > _ttl()
    ):
        return None, token
    key = ApiKey.from_db(DEFAULT_DB_ALIAS, _KEY_FIELDS, copy.deepcopy(entry.key_values))
    key.merchant = Merchant.from_db(
        DEFAULT_DB_ALIAS, _MERCHANT_FIELDS, copy.deepcopy(entry.merchant_values)
    )
    return key, token


def store(key_hash: str, key: ApiKey, token: int) -> None:
    """Keeps the key read from the database, unless an invalidation arrived since `lookup`
    (its state may predate the change) or the listener is not subscribed."""
    listener = invalidation.listener
    if not listener.connected or _ttl() <= 0:
        return
    entry = _Entry(
        key_values=copy.deepcopy(tuple(getattr(key, name) for name in _KEY_FIELDS)),
        merchant_values=copy.deepcopy(tuple(getattr(key.merchant, n) for n in _MERCHANT_FIELDS)),
        loaded_at=time.monotonic(),
        epoch=listener.epoch,
    )
    with _lock:
        if _generation[0] == token:
            _cache[key_hash] = entry


def _publish(message: str) -> None:
    _invalidated(message)  # this process first
    try:
        checkout_redis(timeout=0.5, retries=1).publish(invalidation.channel(TOPIC), message)
    except redis.RedisError:
        # the other processes' copies expire within API_KEY_CACHE_SECONDS; a listener that
        # lost Redis has already dropped them
        logger.exception("api keys: could not publish an invalidation")


def keys_changed(message: str) -> None:
    """A key (its hash) or everything ("*") changed: drop the copies now and after commit."""
    _publish(message)
    transaction.on_commit(lambda: _publish(message))


def cache_clear() -> None:
    _invalidated("*")


def _on_key_saved(sender, instance: ApiKey, **kwargs) -> None:
    keys_changed(instance.key_hash)


def _on_merchant_saved(sender, instance: Merchant, **kwargs) -> None:
    # a merchant's live mode or its very existence decides what its keys may do
    keys_changed("*")


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    post_save.connect(_on_key_saved, sender=ApiKey, dispatch_uid="apikeys-cache-save")
    post_delete.connect(_on_key_saved, sender=ApiKey, dispatch_uid="apikeys-cache-delete")
    post_save.connect(_on_merchant_saved, sender=Merchant, dispatch_uid="merchants-cache-save")
    post_delete.connect(_on_merchant_saved, sender=Merchant, dispatch_uid="merchants-cache-delete")
