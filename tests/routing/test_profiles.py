"""Connectors and routing profiles over the API: versions, activation, audit, and what the
merchant sees of credentials."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connection

from apps.connectors import services as connector_services
from apps.connectors.models import Connector
from apps.core.audit import Actor
from apps.core.models import AuditLogEntry
from apps.intents.models import PaymentAttempt
from apps.routing import services
from apps.routing.models import RoutingProfile
from tests.factories import RoutingProfileFactory
from tests.routing.conftest import first


def _priority(*connectors, name="r", conditions=()):
    return {
        "name": name,
        "conditions": list(conditions),
        "strategy": {"type": "priority", "connectors": [c.public_id for c in connectors]},
    }


@pytest.mark.django_db
def test_connector_api_never_shows_credentials_again(api):
    response = api.post(
        "/v1/connectors",
        {
            "name": "main",
            "connector_type": "stripe",
            "credentials": {"api_key": "sk_test_supersecretvalue1234"},
            "supported_currencies": ["EUR", "usd"],
            "fee_schedule": [{"brand": "visa", "region": "eea", "fixed": 10, "percent_bps": 120}],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["credentials_hint"] == "sk_test_…1234"
    assert "supersecret" not in response.content.decode()
    assert body["supported_currencies"] == ["eur", "usd"]
    # where its requests go: the platform's endpoint for Stripe in test mode
    assert (body["endpoint"], body["endpoint_url"]) == ("test", "https://api.stripe.com")
    assert body["live_url_prefix"] is None
    assert body["health"]["breaker"] == "closed"
    listed = api.get("/v1/connectors").json()
    assert [c["id"] for c in listed["data"]] == [body["id"]]
    assert "supersecret" not in str(listed)
    # rotating credentials: stored encrypted, shown as a new hint, audited without values
    updated = api.post(
        f"/v1/connectors/{body['id']}",
        {
            "credentials": {"api_key": "sk_test_rotatedvalue9876"},
            "enabled": False,
        },
        format="json",
    ).json()
    assert updated["credentials_hint"] == "sk_test_…9876"
    assert (updated["enabled"], updated["disabled_reason"]) == (False, "manual")
    connector = Connector.objects.get(public_id=body["id"])
    assert b"rotatedvalue" not in bytes(connector.credentials_encrypted)
    assert (
        connector_services.connector_credentials(connector)["api_key"] == "sk_test_rotatedvalue9876"
    )
    entry = AuditLogEntry.objects.filter(action="connector.updated").get()
    assert entry.changes["credentials"] == ["[redacted]", "[redacted]"]


@pytest.mark.django_db
def test_versions_activation_and_audit_over_the_api(api, make_connector, decide):
    a, b = make_connector("a"), make_connector("b")
    created = api.post(
        "/v1/routing_profiles",
        {
            "name": "Main",
            "rules": [_priority(a, b)],
            "fallback": [b.public_id],
        },
        format="json",
    )
    assert created.status_code == 200, created.content
    profile = created.json()
    assert (profile["active"], profile["active_version"], profile["latest_version"]) == (
        False,
        None,
        1,
    )
    assert decide().trace()["profile"] is None  # not active yet

    activated = api.post(f"/v1/routing_profiles/{profile['id']}/activate", {}, format="json").json()
    assert (activated["active"], activated["active_version"]) == (True, 1)
    assert first(decide()) == a.public_id

    # an edit is a new version; it routes only once activated
    edited = api.post(
        f"/v1/routing_profiles/{profile['id']}",
        {"rules": [_priority(b, a)], "note": "B first"},
        format="json",
    ).json()
    assert (edited["active_version"], edited["latest_version"]) == (1, 2)
    assert first(decide()) == a.public_id
    api.post(f"/v1/routing_profiles/{profile['id']}/activate", {"version": 2}, format="json")
    decision = decide()
    assert first(decision) == b.public_id
    assert decision.trace()["profile_version"] == 2

    versions = api.get(f"/v1/routing_profiles/{profile['id']}/versions").json()["data"]
    assert [(v["version"], v["active"]) for v in versions] == [(2, True), (1, False)]
    v1 = api.get(f"/v1/routing_profiles/{profile['id']}/versions/1").json()
    assert v1["rules"][0]["strategy"]["connectors"] == [a.public_id, b.public_id]

    actions = list(
        AuditLogEntry.objects.filter(object_id=profile["id"])
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "routing_profile.created",
        "routing_profile.version_created",
        "routing_profile.activated",
        "routing_profile.version_created",
        "routing_profile.activated",
    ]

    missing = api.post(
        f"/v1/routing_profiles/{profile['id']}/activate", {"version": 9}, format="json"
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "version"


@pytest.mark.django_db
def test_a_reactivated_old_version_routes_as_before(make_connector, system_actor, merchant, decide):
    a, b, c = make_connector("a"), make_connector("b"), make_connector("c")
    rules_v1 = [
        _priority(c, name="usd", conditions=[{"field": "currency", "op": "eq", "value": "usd"}]),
        {
            "name": "split",
            "strategy": {
                "type": "weighted",
                "weights": [
                    {"connector": a.public_id, "weight": 50},
                    {"connector": b.public_id, "weight": 50},
                ],
            },
        },
    ]
    profile = RoutingProfileFactory(
        merchant=merchant, name="p", rules=rules_v1, fallback=[], activate=True
    )
    payments = [
        {"intent_id": f"pi_{i}", "currency": cur} for i in range(40) for cur in ("eur", "usd")
    ]
    before = [first(decide(**p)) for p in payments]
    services.routing_profile_version_create(
        profile=profile, rules=[_priority(c)], fallback=[], actor=system_actor
    )
    services.routing_profile_activate(profile=profile, actor=system_actor)
    assert {first(decide(**p)) for p in payments} == {c.public_id}
    services.routing_profile_activate(profile=profile, actor=system_actor, version_number=1)
    assert [first(decide(**p)) for p in payments] == before
    assert len(set(before)) == 3


@pytest.mark.django_db
def test_one_active_profile_per_merchant(make_connector, system_actor, merchant, decide):
    a, b = make_connector("a"), make_connector("b")
    first_profile = RoutingProfileFactory(
        merchant=merchant, name="one", rules=[_priority(a)], fallback=[], activate=True
    )
    RoutingProfileFactory(
        merchant=merchant, name="two", rules=[_priority(b)], fallback=[], activate=True
    )
    first_profile.refresh_from_db()
    assert not first_profile.is_active
    assert RoutingProfile.objects.filter(merchant=merchant, is_active=True).count() == 1
    assert first(decide()) == b.public_id


# --------------------------------------------------------------------------- concurrency


@pytest.mark.django_db(transaction=True)
def test_activation_is_atomic_under_concurrent_confirms(
    api, stripe_connector, adyen_connector, system_actor, merchant, tokenize
):
    """Confirms run while v2 replaces v1: each attempt is routed entirely by one version (its
    trace's version and its connector agree), and once activation returns, every new confirm
    routes with v2."""
    a, b = stripe_connector, adyen_connector
    profile = RoutingProfileFactory(
        merchant=merchant, name="p", rules=[_priority(a, b)], fallback=[], activate=True
    )
    services.routing_profile_version_create(
        profile=profile, rules=[_priority(b, a)], fallback=[], actor=system_actor
    )
    expected = {1: a.public_id, 2: b.public_id}
    payment_methods = [tokenize() for _ in range(24)]
    errors: list[str] = []
    start = threading.Barrier(5)

    def confirm(methods):
        try:
            start.wait()
            for pm in methods:
                response = api.post(
                    "/v1/payment_intents",
                    {
                        "amount": 1500,
                        "currency": "eur",
                        "payment_method": pm,
                        "confirm": True,
                    },
                    format="json",
                    HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
                )
                if response.status_code != 200:
                    errors.append(response.content.decode())
        finally:
            connection.close()

    def switch():
        try:
            start.wait()
            deadline = time.monotonic() + 20  # switch while confirms are in full flow
            while (
                PaymentAttempt.objects.filter(intent__merchant=merchant).count() < 6
                and time.monotonic() < deadline
            ):
                time.sleep(0.005)
            services.routing_profile_activate(
                profile=profile, actor=Actor.system("test"), version_number=2
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(payment_methods[i::4],)) for i in range(4)]
    threads.append(threading.Thread(target=switch))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:2]
    attempts = list(
        PaymentAttempt.objects.filter(intent__merchant=merchant).select_related("connector")
    )
    assert len(attempts) == 24
    for attempt in attempts:
        version = attempt.routing_trace["profile_version"]
        assert attempt.connector.public_id == expected[version], attempt.routing_trace
    versions = Counter(a.routing_trace["profile_version"] for a in attempts)
    assert versions[1] >= 6 and versions[2] >= 1, versions  # the switch happened mid-flow
    # after activation returned, every decision uses v2
    response = api.post(
        "/v1/payment_intents",
        {"amount": 1500, "currency": "eur", "payment_method": tokenize(), "confirm": True},
        format="json",
    )
    attempt = PaymentAttempt.objects.get(intent__public_id=response.json()["id"])
    assert attempt.routing_trace["profile_version"] == 2
    assert attempt.connector_id == b.id


@pytest.mark.django_db
def test_other_processes_changes_reach_the_cached_routing_through_redis(
    make_connector, system_actor, merchant, decide
):
    """Decisions are served from the process's compiled copy; a change made elsewhere is seen
    as soon as its invalidation arrives on the Redis channel."""
    from apps.routing import cache

    a, b = make_connector("a"), make_connector("b")
    profile = RoutingProfileFactory(
        merchant=merchant, name="p", rules=[_priority(a, b)], fallback=[], activate=True
    )
    v2 = services.routing_profile_version_create(
        profile=profile, rules=[_priority(b, a)], fallback=[], actor=system_actor
    )
    cache.listener.ensure_started()
    deadline = time.monotonic() + 5
    while not cache.listener.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.listener.connected
    assert first(decide()) == a.public_id
    # another process activates v2 (here: a write that bypasses this process entirely)
    RoutingProfile.objects.filter(pk=profile.pk).update(active_version=v2)
    assert first(decide()) == a.public_id  # still the cached copy: no I/O per decision
    other_process = cache.client()  # same Redis, as another process would publish
    other_process.publish(cache.channel(), f"{merchant.id}:0")
    deadline = time.monotonic() + 2
    while first(decide()) != b.public_id and time.monotonic() < deadline:
        time.sleep(0.005)
    assert first(decide()) == b.public_id
