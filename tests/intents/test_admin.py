"""Support finds a payment by any id; money-moving actions need their own permission."""

import pytest

from apps.intents.models import Refund
from tests.factories import PaymentIntentFactory, RefundFactory, StaffUserFactory

pytestmark = pytest.mark.usefixtures("connectors")


def _staff(role, merchant):
    return StaffUserFactory(role=role, serves=[merchant])


@pytest.fixture
def paid(merchant):
    return PaymentIntentFactory(
        merchant=merchant,
        status="succeeded",
        order_id="ord-9",
        customer_email="c@x.io",
        amount=2500,
    )


@pytest.mark.parametrize(
    "field",
    [
        "public_id",
        "order_id",
        "customer_email",
        "email_other_case",
        "last4",
        "psp_reference",
        "attempt",
        "attempt_psp_reference",
        "refund",
        "payment_method",
    ],
)
def test_support_finds_a_payment_by_any_id(client, staff_roles, merchant, paid, field):
    other = PaymentIntentFactory(  # another payment, never in the results
        merchant=merchant,
        status="succeeded",
        order_id="ord-10",
        customer_email="d@x.io",
        card_number="5555555555554444",
    )
    refund = RefundFactory(intent=paid, amount=100)
    attempt = paid.attempts.get()
    query = {
        "public_id": paid.public_id,
        "order_id": "ord-9",
        "customer_email": "c@x.io",
        "email_other_case": " C@X.IO ",
        "last4": "4242",
        "psp_reference": paid.psp_reference,
        "attempt": attempt.public_id,
        "attempt_psp_reference": attempt.psp_reference,
        "refund": refund.public_id,
        "payment_method": paid.payment_method.public_id,
    }[field]
    client.force_login(_staff("support", merchant))
    page = client.get("/admin/intents/paymentintent/", {"q": query})
    assert list(page.context["cl"].result_list) == [paid]
    assert other.public_id not in page.content.decode()


def test_a_search_matching_nothing_finds_nothing(client, staff_roles, merchant, paid):
    client.force_login(_staff("support", merchant))
    for query in ("ord-9x", paid.public_id.upper(), "0000", "nobody@x.io"):
        page = client.get("/admin/intents/paymentintent/", {"q": query})
        assert list(page.context["cl"].result_list) == [], query


def test_detail_page_shows_the_timeline(client, staff_roles, merchant, paid):
    client.force_login(_staff("support", merchant))
    page = client.get(f"/admin/intents/paymentintent/{paid.pk}/change/").content.decode()
    assert "payment_intent.succeeded" in page
    assert paid.attempts.get().public_id in page


def test_support_cannot_refund_finance_can_through_the_service(client, staff_roles, merchant, paid):
    client.force_login(_staff("support", merchant))
    denied = client.post(f"/admin/intents/paymentintent/{paid.pk}/refund/", {"amount": 100})
    assert denied.status_code == 403
    assert Refund.objects.count() == 0
    client.force_login(_staff("finance", merchant))
    done = client.post(
        f"/admin/intents/paymentintent/{paid.pk}/refund/",
        {"amount": 100, "reason": "requested_by_customer"},
    )
    assert done.status_code == 302
    refund = Refund.objects.get()
    assert refund.amount == 100
    paid.refresh_from_db()
    assert paid.amount_refunded == 100


def test_ops_capture_action_needs_the_capture_permission(client, staff_roles, merchant):
    intent = PaymentIntentFactory(merchant=merchant, status="requires_capture")
    client.force_login(_staff("finance", merchant))
    client.post(
        "/admin/intents/paymentintent/",
        {"action": "capture_selected", "_selected_action": [intent.pk]},
    )
    intent.refresh_from_db()
    assert intent.status == "requires_capture"  # finance has no capture permission
    client.force_login(_staff("ops", merchant))
    client.post(
        "/admin/intents/paymentintent/",
        {"action": "capture_selected", "_selected_action": [intent.pk]},
    )
    intent.refresh_from_db()
    assert intent.status == "succeeded"


def test_other_merchants_payments_are_invisible(client, staff_roles, other_merchant, paid):
    client.force_login(_staff("support", other_merchant))
    page = client.get("/admin/intents/paymentintent/", {"q": paid.public_id})
    assert list(page.context["cl"].result_list) == []
    detail = client.get(f"/admin/intents/paymentintent/{paid.pk}/change/", follow=True)
    assert paid.public_id not in detail.content.decode()
