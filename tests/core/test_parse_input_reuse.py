"""`parse_input` validates each thread's bodies with one serializer per class: nothing of one
request's body, result or errors may reach the next one's, nor another thread's."""

from __future__ import annotations

import sys
import threading

import pytest
from rest_framework.exceptions import ValidationError

from apps.core.api.serializers import parse_input
from apps.intents.api.serializers import PaymentIntentCreateInputSerializer as Create


def _body(n: int, **extra) -> dict:
    return {"amount": n, "currency": "eur", "order_id": f"order-{n}", **extra}


def test_a_refused_body_leaves_nothing_for_the_next_one():
    with pytest.raises(ValidationError) as first:
        parse_input(Create, _body(1, capture_method="later"))
    assert "capture_method" in first.value.detail

    good = parse_input(Create, _body(2, splits=[{"seller": "acct_1", "amount": 1}]))
    assert good["order_id"] == "order-2"
    assert good["splits"] == [{"seller": "acct_1", "amount": 1}]
    assert "capture_method" not in good

    with pytest.raises(ValidationError) as second:
        parse_input(Create, _body(3, colour="red"))
    assert list(second.value.detail) == ["colour"]  # only this body's error, not the first's

    again = parse_input(Create, _body(4))
    assert again["order_id"] == "order-4" and "splits" not in again


def test_a_result_is_not_changed_by_later_validations():
    first = parse_input(Create, _body(5, metadata={"k": "v"}))
    parse_input(Create, _body(6, metadata={"other": "w"}))
    assert first["order_id"] == "order-5" and first["metadata"] == {"k": "v"}


def test_threads_validate_their_own_bodies():
    wrong: list[str] = []
    start = threading.Barrier(4)

    def validate(offset: int) -> None:
        start.wait()
        for n in range(offset, offset + 400, 4):
            body = _body(n, confirm=bool(n % 3)) if n % 5 else _body(n, capture_method="later")
            try:
                data = parse_input(Create, body)
            except ValidationError as exc:
                if n % 5 or list(exc.detail) != ["capture_method"]:
                    wrong.append(f"{n}: refused {exc.detail}")
                continue
            if not n % 5 or data["order_id"] != f"order-{n}" or data["confirm"] != bool(n % 3):
                wrong.append(f"{n}: got {data}")

    threads = [threading.Thread(target=validate, args=(i,)) for i in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside each validation, as under load
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []
