"""Who must hear that a connector changed (an edit, auto-disable or re-enable, a breaker
transition): routing's compiled caches, registered in RoutingConfig.ready. Listeners are called
at once and again after the transaction commits, so readers reload first the pre-commit state,
then the committed one; a listener's failure never fails the change."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

_listeners: list[Callable[[int, bool], None]] = []


def on_connector_change(listener: Callable[[int, bool], None]) -> None:
    """`listener(merchant_id, livemode)` after any change of one of the merchant's connectors."""
    if listener not in _listeners:
        _listeners.append(listener)


def _notify(merchant_id: int, livemode: bool) -> None:
    for listener in list(_listeners):
        try:
            listener(merchant_id, livemode)
        except Exception:
            logger.exception("connectors: a change listener failed for merchant %s", merchant_id)


def connector_changed(merchant_id: int, livemode: bool, *, after_commit: bool = True) -> None:
    _notify(merchant_id, livemode)
    if after_commit:
        transaction.on_commit(lambda: _notify(merchant_id, livemode))
