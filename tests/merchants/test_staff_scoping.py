"""A support user assigned to merchant A sees none of merchant B's rows in any admin page."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from apps.core.models import AuditLogEntry
from apps.merchants.models import ApiKey
from tests.factories import ApiKeyFactory, StaffUserFactory


@pytest.fixture
def support_user(staff_roles, merchant):
    return StaffUserFactory(role="support", serves=[merchant])


@pytest.fixture
def foreign_key(other_merchant):
    return ApiKeyFactory(merchant=other_merchant, name="foreign-key-name")


@pytest.fixture
def own_key(merchant):
    return ApiKeyFactory(merchant=merchant, name="own-key-name")


def test_list_pages_show_only_the_assigned_merchant(
    client, support_user, merchant, other_merchant, own_key, foreign_key
):
    client.force_login(support_user)
    merchants_page = client.get("/admin/merchants/merchant/").content.decode()
    assert merchant.public_id in merchants_page
    assert other_merchant.public_id not in merchants_page
    keys_page = client.get("/admin/merchants/apikey/").content.decode()
    assert own_key.public_id in keys_page
    assert foreign_key.public_id not in keys_page


def test_search_does_not_reach_other_merchants(client, support_user, other_merchant, foreign_key):
    client.force_login(support_user)
    found = client.get("/admin/merchants/apikey/", {"q": foreign_key.public_id})
    assert list(found.context["cl"].result_list) == []
    found = client.get("/admin/merchants/merchant/", {"q": "Other Shop"})
    assert list(found.context["cl"].result_list) == []
    assert other_merchant.public_id not in found.content.decode()


def test_detail_pages_of_other_merchants_are_not_served(
    client, support_user, other_merchant, foreign_key, merchant
):
    client.force_login(support_user)
    own = client.get(f"/admin/merchants/merchant/{merchant.pk}/change/")
    assert own.status_code == 200
    for url in (
        f"/admin/merchants/merchant/{other_merchant.pk}/change/",
        f"/admin/merchants/apikey/{foreign_key.pk}/change/",
    ):
        response = client.get(url, follow=True)
        assert other_merchant.public_id not in response.content.decode()
        assert foreign_key.public_id not in response.content.decode()


def test_audit_log_admin_is_scoped_too(client, support_user, merchant, other_merchant):
    client.force_login(support_user)
    page = client.get("/admin/core/auditlogentry/").content.decode()
    assert merchant.public_id in page  # merchant.created entry
    assert other_merchant.public_id not in page


def test_admin_role_sees_every_merchant(client, staff_roles, merchant, other_merchant):
    client.force_login(StaffUserFactory(role="admin"))  # serves no merchant in particular
    page = client.get("/admin/merchants/merchant/").content.decode()
    assert merchant.public_id in page and other_merchant.public_id in page


def test_support_role_cannot_change_or_revoke(client, support_user, own_key):
    client.force_login(support_user)
    response = client.post(
        "/admin/merchants/apikey/", {"action": "revoke_keys", "_selected_action": [own_key.pk]}
    )
    own_key.refresh_from_db()
    assert own_key.revoked_at is None
    assert response.status_code in (200, 302, 403)


def test_ops_can_revoke_keys_through_the_service_and_it_is_audited(
    client, staff_roles, merchant, own_key
):
    client.force_login(StaffUserFactory(username="ops-a", role="ops", serves=[merchant]))
    client.post(
        "/admin/merchants/apikey/", {"action": "revoke_keys", "_selected_action": [own_key.pk]}
    )
    own_key.refresh_from_db()
    assert own_key.revoked_at is not None
    entry = AuditLogEntry.objects.get(action="api_key.revoked")
    assert entry.actor_type == "staff" and entry.actor == "ops-a"


def test_admin_edits_write_the_audit_log(client, staff_roles, merchant):
    client.force_login(StaffUserFactory(username="boss", superuser=True))
    response = client.post(
        f"/admin/merchants/merchant/{merchant.pk}/change/",
        {
            "name": "Edited In Admin",
            "email": merchant.email,
            "country": "",
            "metadata": "{}",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    entry = AuditLogEntry.objects.get(action="admin.changed")
    assert entry.actor == "boss" and entry.object_id == merchant.public_id
    assert entry.changes["name"] == ["Test Shop", "Edited In Admin"]


def test_roles_exist_with_money_moving_permissions(staff_roles):
    finance = Group.objects.get(name="finance")
    codenames = set(finance.permissions.values_list("codename", flat=True))
    assert {"refund_payment", "write_off_discrepancy", "post_ledger_adjustment"} <= codenames
    support = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    assert "refund_payment" not in support and "capture_payment" not in support
    assert all(c.startswith("view_") for c in support)


def test_seed_demo_is_idempotent(db):
    call_command("seed_demo", verbosity=0)
    counts = (ApiKey.objects.count(), get_user_model().objects.count())
    call_command("seed_demo", verbosity=0)
    assert (ApiKey.objects.count(), get_user_model().objects.count()) == counts
