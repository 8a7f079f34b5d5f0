"""Support, finance and ops in a real browser: find a payment by email, open its timeline,
refund it, read the trial balance, open the dashboards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.intents.models import PaymentIntent
from apps.observability.rollups import rollups_refresh
from tests.factories import StaffUserFactory
from tests.factories.staff import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("connectors")]


def _login(page, user) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


@pytest.fixture
def paid(pay, sim, connector_names):
    """A payment that failed over (stripe down → adyen), by jane.doe@example.com."""
    sim.faults(connector_names["stripe"], outage=True)
    response = pay(amount=4599, customer_email="jane.doe@example.com")
    assert response.status_code == 200, response.content
    sim.faults(connector_names["stripe"], outage=False)
    return PaymentIntent.objects.get(public_id=response.json()["id"])


def test_finance_finds_a_payment_by_email_refunds_it_and_reads_the_trial_balance(
    page, paid, merchant
):
    _login(page, StaffUserFactory(role="finance", serves=[merchant]))

    # find it by part of the shopper's email
    page.goto("/admin/intents/paymentintent/")
    page.fill("#searchbar", "jane.doe@")
    with page.expect_navigation():
        page.press("#searchbar", "Enter")
    row = page.locator("#result_list tbody tr", has_text=paid.public_id)
    assert row.count() == 1
    assert "€45.99" in row.inner_text()
    # the key columns fit at 1,440 px, next to the admin's navigation
    for column in ("public_id", "amount_display", "status", "customer_email", "created"):
        box = page.locator(f"#result_list th.column-{column}").bounding_box()
        assert box and box["x"] + box["width"] <= 1440, column

    # its page: amounts in euros, the timeline, the routing decisions as tables
    with page.expect_navigation():
        row.locator("a", has_text=paid.public_id).click()
    page.wait_for_selector("text=outbox events (timeline)")
    body = page.inner_text("#content")
    assert "€45.99 · received €45.99 · refunded €0.00" in body
    assert "payment_intent.succeeded" in body
    assert page.locator("table.routing-trace").count() == 2  # one per attempt
    assert "skipped: already tried" in body

    # refund €10.00 of it
    with page.expect_navigation():
        page.click("text=Refund…")
    assert "Received €45.99, already refunded €0.00." in page.inner_text("#content")
    page.fill("#id_amount", "1000")
    with page.expect_navigation():
        page.click("input[type=submit][value=Refund]")
    message = page.inner_text("ul.messagelist")
    # adyen (where the failover took the payment) answers refunds asynchronously
    assert "Refund re_" in message and ("pending" in message or "succeeded" in message)
    refunds = page.inner_text("#refunds-group")
    assert "€10.00" in refunds

    # the books still balance
    page.goto("/admin/ledger/ledgeraccount/trial-balance/")
    content = page.inner_text("#content")
    assert "EUR · test" in content
    assert "NOT balanced" not in content
    assert page.inner_text(".total-debit").startswith("€")
    assert page.external_requests == []


def test_ops_opens_the_dashboards(page, paid, merchant):
    rollups_refresh(since=timezone.now() - timedelta(hours=1))
    _login(page, StaffUserFactory(role="ops", serves=[merchant]))

    page.goto("/admin/")
    page.click("text=Dashboards")
    page.wait_for_selector("#chart-rates[data-drawn=true]")  # Chart.js drew it, from static
    kpis = page.inner_text("#ops-kpis")
    assert "1\npayments (intents)" in kpis
    assert "100.0%\nauthorization rate per intent (with retries)" in kpis
    assert "0.0%\nfirst-attempt authorization rate" in kpis  # stripe was down
    assert "error" in page.inner_text("text=Failovers and their reasons >> xpath=..")

    # a finer granularity over the last hour
    page.select_option("#id_range", "1h")
    page.select_option("#id_granularity", "minute")
    page.click("#dashboard-form input[type=submit]")
    page.wait_for_selector("#chart-rates[data-drawn=true]")
    assert "granularity=minute" in page.url
    assert "per minute" in page.inner_text(".dash-meta")

    # finance and risk
    page.click(".dash-nav >> text=Finance")
    page.wait_for_selector("#finance-totals")
    assert "€45.99" in page.inner_text("#finance-totals")
    page.click(".dash-nav >> text=Risk")
    assert merchant.name in page.inner_text("#dispute-rates")

    assert page.console_errors == []
    assert page.external_requests == []  # no CDN: every script is served by the platform
