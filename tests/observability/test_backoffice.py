"""The back-office reads like a payments product: amounts with their currency, the routing
trace as a table, partial email and name search, links, CSV exports."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from apps.core.money import format_amount
from apps.intents.models import PaymentIntent
from tests.factories import StaffUserFactory
from tests.factories.staff import PASSWORD


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (4599, "eur", "€45.99"),
        (-1050, "usd", "-$10.50"),
        (500, "jpy", "¥500"),
        (1250, "kwd", "KWD 1.250"),
        (123456789, "gbp", "£1,234,567.89"),
        (0, "eur", "€0.00"),
        (None, "eur", "—"),
        (5, "xyz", "5 XYZ"),
    ],
)
def test_amounts_read_with_their_currency(amount, currency, expected):
    assert format_amount(amount, currency) == expected


@pytest.fixture
def support(merchant):
    user = StaffUserFactory(role="support", serves=[merchant])
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def finance(merchant):
    user = StaffUserFactory(role="finance", serves=[merchant])
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def paid(pay, sim, connector_names, connectors):
    """A payment that failed over (stripe down → adyen), by jane.doe7@example.com."""
    sim.faults(connector_names["stripe"], outage=True)
    response = pay(amount=4599, customer_email="jane.doe7@example.com")
    assert response.status_code == 200, response.content
    return PaymentIntent.objects.get(public_id=response.json()["id"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "term",
    ["jane.doe7@example.com", "JANE.DOE7@", "doe7@exam", "Jane Do", "jane", "jane.doe7", "doe7"],
)
def test_support_finds_a_payment_by_part_of_an_email_or_a_name(support, paid, term):
    page = support.get("/admin/intents/paymentintent/", {"q": term}).content.decode()
    assert paid.public_id in page, term
    assert "€45.99" in page


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["nobody@example.com", "zzz", "Someone Else", "pi_doesnotexist00"])
def test_a_search_that_matches_nothing_finds_nothing(support, paid, term):
    page = support.get("/admin/intents/paymentintent/", {"q": term}).content.decode()
    assert paid.public_id not in page, term


@pytest.mark.django_db
def test_the_payment_page_shows_the_routing_trace_as_a_table_and_links(support, paid):
    page = support.get(f"/admin/intents/paymentintent/{paid.pk}/change/").content.decode()
    assert 'class="routing-trace"' in page
    assert "skipped: already tried" in page  # the failover's second decision
    stripe = paid.attempts.get(sequence=1).connector
    assert f"<td>{stripe.name}</td><td colspan=3>skipped: already tried" in page
    assert '"candidates"' not in page  # no JSON blob
    assert "€45.99 · received €45.99 · refunded €0.00" in page
    assert f"/admin/ledger/journaltransaction/?q={paid.public_id}" in page
    assert f"/admin/events/inboundwebhook/?q={paid.public_id}" in page
    assert f"/admin/events/webhookdelivery/?q={paid.public_id}" in page


@pytest.mark.django_db
def test_finance_exports_the_payment_list_as_csv(finance, paid):
    response = finance.post(
        "/admin/intents/paymentintent/",
        {"action": "export_csv", "_selected_action": [paid.pk], "select_across": "0"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, row = rows[0], rows[1]
    assert len(rows) == 2
    record = dict(zip(header, row, strict=True))
    assert record["public_id"] == paid.public_id
    assert record["amount_major"] == "45.99" and record["currency"] == "eur"
    assert record["customer_email"] == "jane.doe7@example.com"


@pytest.mark.django_db
def test_finance_exports_the_journals_as_csv(finance, paid, django_capture_on_commit_callbacks):
    response = finance.post(
        "/admin/ledger/journaltransaction/",
        {"action": "export_csv", "select_across": "1", "_selected_action": ["0"]},
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][0] == "public_id"
    assert any("€45.99" in cell for row in rows[1:] for cell in row)
