"""Every operation of the OpenAPI document with hostile values in every path parameter, query
parameter and body field (top level and one level down): wrong types, extreme numbers, empty
and huge strings, NUL and other control characters, lone surrogates, arrays for objects,
bodies that are not objects, too deep or not JSON. No answer may be a 5xx, and each must be
what the document says (a documented status, the error envelope for errors).

Deterministic (a fixed list of values, no randomness) and bounded: about 5,000 requests."""

from __future__ import annotations

import json

import pytest

from tests.intents.conftest import (  # noqa: F401  (fixtures)
    connector_names,
    platform_simulator,
    simulator_url,
    stripe_connector,
)
from tests.support.api_contract import (
    Call,
    ContractValidator,
    build_world,
    good_calls,
    load_schema,
    operations,
    send,
    with_body,
)

PATH_VALUES = [
    "\x00",
    "pi_\x00",
    "\x01\x1f\x7f",
    " ",
    "x" * 500,
    "\u00e9\U0001f600",
    "..",
    "0",
    "-1",
    "99999999999999999999",
    "OTHER",  # another merchant's object
]
QUERY_VALUES = [
    "",
    "\x00",
    "\x07",
    "abc",
    "-1",
    "0",
    "1.5",
    "1e3",
    "NaN",
    "true",
    "99999999999999999999",
    "253402300800",
    "x" * 3000,
    "\U0001f600",
]
BODY_VALUES = [
    None,
    True,
    0,
    -1,
    2**63,
    -(2**63) - 1,
    10**40,
    1.5,
    1e308,
    "",
    "\x00",
    "\ud800",
    "\x07\n",
    "x" * 20_000,
    [],
    [None, 1, "a"],
    {},
    {"a": {"b": {"c": 1}}},
]
RAW_BODIES = [
    "",
    "null",
    "[]",
    '"text"',
    "1",
    "{",
    '{"a": NaN}',
    '{"a": Infinity}',
    "[" * 1000 + "]" * 1000,
    '{"a": 1' + "0" * 5000 + "}",
    b"\xff\xfe{}",
    '{"a": 1, "a": 2}',
]


@pytest.fixture
def world(client, merchant, other_merchant, system_actor, stripe_connector):  # noqa: F811
    return build_world(
        merchant=merchant,
        other_merchant=other_merchant,
        system_actor=system_actor,
        connector=stripe_connector,
        schema=load_schema(client),
    )


def _hostile_calls(world, good: Call, operation: dict):
    for name in good.path_params:
        for value in PATH_VALUES:
            value = world.ids["other_merchants_endpoint"] if value == "OTHER" else value
            yield (
                f"path {name}={value[:20]!r}",
                Call(good.operation_id, {**good.path_params, name: value}, key=good.key),
            )
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    for name in names:
        spellings = [name]
        if name.startswith("created_"):
            spellings.append(f"created[{name.split('_', 1)[1]}]")
        for spelled in spellings:
            for value in QUERY_VALUES:
                yield (
                    f"query {spelled}={value[:20]!r}",
                    Call(good.operation_id, good.path_params, {spelled: value}, key=good.key),
                )
    if not operation.get("requestBody"):
        return
    base = good.body if isinstance(good.body, dict) else {}
    for raw in RAW_BODIES:
        yield (
            f"raw body {raw[:20]!r}",
            Call(good.operation_id, good.path_params, raw_body=raw, key=good.key),
        )
    for name, value in base.items():
        for hostile in BODY_VALUES:
            yield f"body {name}={hostile!r:.30}", with_body(good, {**base, name: hostile})
        if isinstance(value, dict):  # one level down: card[number], bank_account[country], ...
            for inner in value:
                for hostile in BODY_VALUES:
                    body = {**base, name: {**value, inner: hostile}}
                    yield f"body {name}[{inner}]={hostile!r:.30}", with_body(good, body)
            for key in ("\x00", "k\x00", "\ud800", "", "x" * 1000):
                body = {**base, name: {**value, key: "v"}}
                yield f"body {name} key {key!r:.30}", with_body(good, body)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for inner in value[0]:
                for hostile in BODY_VALUES:
                    body = {**base, name: [{**value[0], inner: hostile}]}
                    yield f"body {name}[0][{inner}]={hostile!r:.30}", with_body(good, body)
    for hostile in ({"\x00": 1}, {"k": "\x00"}, {"a" * 100: "b"}, {"": "x"}):
        yield f"body extra key {hostile!r:.30}", with_body(good, {**base, **hostile})


def test_no_hostile_input_reaches_a_500(world):
    validator = ContractValidator(world.schema)
    ops = operations(world.schema)
    problems, sent = [], 0
    for operation_id, good in good_calls(world).items():
        _, _, operation = ops[operation_id]
        for label, call in _hostile_calls(world, good, operation):
            if call.body is not None:
                # escapes (\u0000, \ud800) as a JSON client sends them
                call.raw_body, call.body = json.dumps(call.body), None
            response = send(world, call)
            sent += 1
            if response.status_code >= 500:
                problems.append(f"{operation_id} [{label}]: {response.status_code}")
                continue
            problems += [
                f"{operation_id} [{label}]: {p}"
                for p in validator.response_problems(operation, response)[:3]
            ]
    assert sent > 2500
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:80])
