"""`manage.py demo_load` against a live server: payments through the API, declines, a
failover during the simulated outage, refunds, and the dashboards refreshed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.observability.models import AttemptRollup


@pytest.fixture
def demo_webhooks_unregistered_after(simulator_url):
    """seed_demo registers the simulator's webhooks to this test's live server, and the
    simulator keeps sending (the disputed payment's notifications, retries) after the test:
    stop it, or the session's live server answers them while other tests run."""
    yield
    from apps.connectors.models import Connector
    from apps.psp_simulator.control_client import SimulatorControl

    control = SimulatorControl(simulator_url)
    for account in Connector.objects.exclude(simulator_account="").values_list(
        "simulator_account", flat=True
    ):
        try:
            control.unregister_webhook(account)
        except Exception:  # an account without a webhook: nothing to stop
            continue


@pytest.mark.django_db(transaction=True)
def test_demo_load_makes_the_demo_come_alive(
    live_server, platform_simulator, settings, demo_webhooks_unregistered_after
):
    settings.API_BASE_URL = live_server.url
    call_command("seed_demo", stdout=StringIO())
    out = StringIO()
    call_command("demo_load", payments=9, base_url=live_server.url, seed=3, stdout=out)
    report = out.getvalue()
    assert "to be disputed succeeded" in report  # the simulator's dispute card
    assert "outage on (failovers)" in report and "outage off" in report
    assert PaymentIntent.objects.filter(status="succeeded").exists()
    # the outage made the stripe connector fail and the payment move on
    failed_over = PaymentAttempt.objects.filter(outcome="error").values_list("intent_id")
    assert PaymentAttempt.objects.filter(intent_id__in=failed_over, sequence=2).exists()
    assert AttemptRollup.objects.filter(period="minute").exists()
    assert "dashboards: " in report


@pytest.mark.django_db
def test_demo_load_says_what_is_missing(settings):
    with pytest.raises(Exception, match="seed_demo"):
        call_command("demo_load", payments=1, base_url="http://127.0.0.1:9", stdout=StringIO())
