from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from apps.merchants import services
from apps.merchants.models import ApiKey
from tests.factories import ApiKeyFactory


def client_with(key: str | None = None, header: str | None = None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    elif key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def assert_401(response, code):
    assert response.status_code == 401, response.content
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == code


def test_secret_keys_are_stored_only_as_a_hash(merchant, system_actor):
    issued = services.api_key_create(
        merchant=merchant, kind="secret", livemode=False, actor=system_actor
    )
    assert issued.raw_key.startswith("sk_test_")
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    values = [str(getattr(row, f.attname)) for f in ApiKey._meta.fields]
    assert issued.raw_key not in values
    assert row.display.startswith("sk_test_") and row.display.endswith(issued.raw_key[-4:])


def test_a_valid_key_authenticates(api, merchant):
    response = api.get("/v1/account")
    assert response.status_code == 200
    assert response.json()["id"] == merchant.public_id


@pytest.mark.django_db
def test_missing_key():
    assert_401(client_with().get("/v1/account"), "api_key_missing")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "Basic abc",
        "Bearer ",
        "Bearer nonsense",
        "sk_test_abc",
        "Bearer sk_prod_aaaaaaaaaaaaaaaaaaaaaaaa",
    ],
)
def test_malformed_key(header):
    assert_401(client_with(header=header).get("/v1/account"), "api_key_malformed")


@pytest.mark.django_db
def test_unknown_key():
    assert_401(client_with("sk_test_" + "x" * 32).get("/v1/account"), "api_key_invalid")


def test_revoked_key(secret_key, merchant, system_actor):
    key = ApiKey.objects.get(merchant=merchant, kind="secret")
    services.api_key_revoke(api_key=key, actor=system_actor)
    assert_401(client_with(secret_key).get("/v1/account"), "api_key_revoked")


def test_live_key_of_a_merchant_not_enabled_for_live_is_wrong_mode(merchant):
    live = ApiKeyFactory(merchant=merchant, livemode=True).raw_key
    assert live.startswith("sk_live_")
    assert_401(client_with(live).get("/v1/account"), "api_key_wrong_mode")
    merchant.live_enabled = True
    merchant.save()
    assert client_with(live).get("/v1/account").status_code == 200


def test_key_presented_with_the_other_mode_prefix_is_refused(secret_key):
    tampered = "sk_live_" + secret_key[len("sk_test_") :]
    assert_401(client_with(tampered).get("/v1/account"), "api_key_invalid")


def test_publishable_key_on_secret_only_endpoint_is_403(publishable_key):
    response = client_with(publishable_key).get("/v1/account")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert response.json()["error"]["code"] == "secret_key_required"


def test_create_key_shows_the_secret_once(api):
    created = api.post("/v1/api_keys", {"type": "secret", "name": "ci"}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("sk_test_")
    listed = api.get("/v1/api_keys").json()
    assert listed["object"] == "list"
    assert secret not in str(listed)
    assert client_with(secret).get("/v1/account").status_code == 200


def test_roll_keeps_the_old_key_valid_for_the_grace_period(api, secret_key, merchant):
    key_id = ApiKey.objects.get(merchant=merchant, kind="secret").public_id
    rolled = api.post(f"/v1/api_keys/{key_id}/roll", {"expires_in": 3600}, format="json")
    assert rolled.status_code == 201
    new_secret = rolled.json()["secret"]
    assert client_with(secret_key).get("/v1/account").status_code == 200
    assert client_with(new_secret).get("/v1/account").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert_401(client_with(secret_key).get("/v1/account"), "api_key_expired")
        assert client_with(new_secret).get("/v1/account").status_code == 200


def test_roll_with_no_grace_expires_at_once(api, secret_key, merchant):
    key_id = ApiKey.objects.get(merchant=merchant, kind="secret").public_id
    new_secret = api.post(f"/v1/api_keys/{key_id}/roll", {}, format="json").json()["secret"]
    assert_401(client_with(secret_key).get("/v1/account"), "api_key_expired")
    assert client_with(new_secret).get("/v1/account").status_code == 200


@pytest.mark.parametrize("grace", [-1, 7 * 24 * 3600 + 1, "soon", 1.5])
def test_roll_refuses_bad_grace_periods(api, merchant, grace):
    key_id = ApiKey.objects.get(merchant=merchant, kind="secret").public_id
    response = api.post(f"/v1/api_keys/{key_id}/roll", {"expires_in": grace}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "expires_in"
    assert ApiKey.objects.filter(merchant=merchant).count() == 1


def test_revoke_by_api(api, merchant):
    other = ApiKeyFactory(merchant=merchant)
    response = api.post(f"/v1/api_keys/{other.public_id}/revoke")
    assert response.status_code == 200
    assert response.json()["revoked"] is True
    assert_401(client_with(other.raw_key).get("/v1/account"), "api_key_revoked")


def test_keys_of_another_merchant_are_invisible(api, other_merchant):
    foreign = ApiKeyFactory(merchant=other_merchant)
    response = api.post(f"/v1/api_keys/{foreign.public_id}/revoke")
    assert response.status_code == 404
    assert client_with(foreign.raw_key).get("/v1/account").status_code == 200


def test_test_mode_keys_do_not_list_live_mode_keys(api, merchant):
    ApiKeyFactory(merchant=merchant, livemode=True)
    listed = api.get("/v1/api_keys").json()["data"]
    assert listed and all(k["livemode"] is False for k in listed)


def test_account_update_changes_the_profile_and_is_audited(api, merchant):
    from apps.core.models import AuditLogEntry

    response = api.post(
        "/v1/account", {"name": "New Name", "metadata": {"tier": "gold"}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "New Name"
    entry = AuditLogEntry.objects.get(action="merchant.updated")
    assert entry.actor_type == "api_key" and entry.actor.startswith("sk_test_")
    assert entry.changes["name"] == ["Test Shop", "New Name"]
    assert entry.request_id == response["Request-Id"]
