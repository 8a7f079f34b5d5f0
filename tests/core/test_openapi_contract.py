"""The OpenAPI document describes exactly what the server does: every documented operation is
called, with good and bad requests, and each real response must have a status the operation
documents and a body valid against the documented schema (objects are closed with
`additionalProperties: false`, so an undocumented field fails too). Request bodies the
document calls invalid are refused by the server, and the ones it calls valid are accepted."""

from __future__ import annotations

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


@pytest.fixture
def world(client, merchant, other_merchant, system_actor, stripe_connector):  # noqa: F811
    schema = load_schema(client)
    return build_world(
        merchant=merchant,
        other_merchant=other_merchant,
        system_actor=system_actor,
        connector=stripe_connector,
        schema=schema,
    )


@pytest.fixture
def validator(world):
    return ContractValidator(world.schema)


def test_every_documented_operation_has_a_good_request(world):
    assert set(good_calls(world)) == set(operations(world.schema))


def test_good_requests_succeed_and_match_the_document(world, validator):
    problems = []
    ops = operations(world.schema)
    for operation_id, call in good_calls(world).items():
        _, _, operation = ops[operation_id]
        request_schema = validator.request_schema(operation)
        if request_schema is not None and call.body is not None:
            problems += [
                f"{operation_id} request: {p}"
                for p in validator.body_errors(call.body, request_schema)
            ]
        response = send(world, call)
        if not 200 <= response.status_code < 400:
            problems.append(f"{operation_id}: {response.status_code} {response.content[:300]!r}")
        problems += [
            f"{operation_id}: {p}" for p in validator.response_problems(operation, response)
        ]
    assert not problems, "\n".join(problems)


def _bad_calls(world, good: Call, operation: dict) -> list[tuple[str, Call]]:
    bad = []
    if operation.get("security") != [{}] and good.key is not None:
        bad.append(("no key", Call(good.operation_id, good.path_params, key=None)))
        bad.append(
            ("bad key", Call(good.operation_id, good.path_params, key="sk_test_" + "x" * 30))
        )
        if good.key == "secret":
            bad.append(
                ("publishable", Call(good.operation_id, good.path_params, key="publishable"))
            )
    for name in good.path_params:
        unknown = dict(good.path_params, **{name: "9999" if name == "number" else "xx_unknown"})
        bad.append((f"unknown {name}", Call(good.operation_id, unknown, good.query, good.body)))
        other = dict(good.path_params, **{name: world.ids["other_merchants_endpoint"]})
        bad.append(
            (f"other merchant's {name}", Call(good.operation_id, other, good.query, good.body))
        )
    if operation.get("requestBody"):
        bad.append(("unknown param", with_body(good, {**(good.body or {}), "colour": "red"})))
        bad.append(("array body", with_body(good, [])))
        bad.append(("malformed", Call(good.operation_id, good.path_params, raw_body="{")))
        bad.append(
            ("too deep", Call(good.operation_id, good.path_params, raw_body="[" * 40 + "]" * 40))
        )
        bad.append(
            (
                "bad Idempotency-Key",
                Call(
                    good.operation_id,
                    good.path_params,
                    body=good.body,
                    headers={"HTTP_IDEMPOTENCY_KEY": "k" * 256},
                ),
            )
        )
    for name in operation_query_params(operation):
        bad.append((f"query {name}", Call(good.operation_id, good.path_params, {name: "-1"})))
    return bad


def operation_query_params(operation: dict) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]


def test_bad_requests_are_refused_as_documented(world, validator):
    problems = []
    ops = operations(world.schema)
    for operation_id, good in good_calls(world).items():
        _, _, operation = ops[operation_id]
        for label, call in _bad_calls(world, good, operation):
            response = send(world, call)
            if response.status_code >= 500:
                problems.append(f"{operation_id} [{label}]: {response.status_code}")
            problems += [
                f"{operation_id} [{label}]: {p}"
                for p in validator.response_problems(operation, response)
            ]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- request bodies


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


_WRONG_TYPE = {
    "string": 12345,
    "integer": "12",
    "number": "1.5",
    "boolean": "true",
    "array": {"a": 1},
    "object": ["a"],
}


def test_bodies_the_document_calls_invalid_are_refused(world, validator):
    """For each body property: a value of another JSON type, a null where the property is not
    nullable, and the body without each required property. The document must call each
    invalid, and the server must refuse each with a 400 naming the property."""
    problems = []
    ops = operations(world.schema)
    for operation_id, good in good_calls(world).items():
        _, _, operation = ops[operation_id]
        request_schema = validator.request_schema(operation)
        if request_schema is None or good.body is None:
            continue
        component = _resolve(world.schema, request_schema)
        for name, prop in component.get("properties", {}).items():
            prop = _resolve(world.schema, prop)
            candidates = []
            types = {prop.get("type")} | {
                _resolve(world.schema, s).get("type") for s in prop.get("oneOf", [])
            }
            types.discard(None)
            if len(types) == 1:
                candidates.append(("wrong type", _WRONG_TYPE[types.pop()]))
            if not prop.get("nullable"):
                candidates.append(("null", None))
            for label, value in candidates:
                body = {**good.body, name: value}
                if not validator.body_errors(body, request_schema):
                    problems.append(f"{operation_id}.{name} [{label}]: the document accepts it")
                    continue
                response = send(world, with_body(good, body))
                if response.status_code != 400:
                    problems.append(
                        f"{operation_id}.{name} [{label}]: {response.status_code} "
                        f"{response.content[:200]!r}"
                    )
        for name in component.get("required", []):
            body = {k: v for k, v in good.body.items() if k != name}
            response = send(world, with_body(good, body))
            if response.status_code != 400 or response.json()["error"]["param"] != name:
                problems.append(f"{operation_id} without {name}: {response.status_code}")
    assert not problems, "\n".join(problems)


def test_bodies_the_document_calls_valid_are_accepted(world, validator):
    """Each good body less each optional property is still valid by the document, and the
    server accepts it."""
    problems = []
    ops = operations(world.schema)
    for operation_id, good in good_calls(world).items():
        _, _, operation = ops[operation_id]
        request_schema = validator.request_schema(operation)
        if request_schema is None or not good.body:
            continue
        required = set(_resolve(world.schema, request_schema).get("required", []))
        for name in set(good.body) - required:
            body = {k: v for k, v in good.body.items() if k != name}
            assert not validator.body_errors(body, request_schema), (operation_id, name)
            response = send(world, with_body(good, body))
            if not 200 <= response.status_code < 300:
                problems.append(
                    f"{operation_id} without {name}: {response.status_code} "
                    f"{response.content[:200]!r}"
                )
    assert not problems, "\n".join(problems)
