"""Fault injection, end to end: what the caller sees, and what the PSP really charged."""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apps.psp_simulator.faults import FaultConfig, FaultInjector
from tests.support.simulator import start_simulator

pytestmark = pytest.mark.slow


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_fixed_latency_with_jitter_is_applied(stripe, control, connector):
    control.set_faults(connector, {"latency_ms": 300, "latency_jitter_ms": 50})

    timings = [_timed(lambda: stripe.get("/v1/payment_intents/pi_x"))[1] for _ in range(5)]

    assert all(0.25 <= t < 0.6 for t in timings), timings


def test_latency_distributions_have_their_shape():
    def samples(**config) -> list[float]:
        injector = FaultInjector()
        injector.configure(FaultConfig.from_dict({"seed": 1, **config}))
        return [injector.decide("authorize").latency_s * 1000 for _ in range(4000)]

    normal = samples(latency_distribution="normal", latency_ms=200, latency_stddev_ms=30)
    assert statistics.mean(normal) == pytest.approx(200, abs=5)
    assert statistics.stdev(normal) == pytest.approx(30, abs=3)

    lognormal = samples(latency_distribution="lognormal", latency_ms=100, latency_sigma=1.0)
    assert statistics.median(lognormal) == pytest.approx(100, rel=0.1)
    assert max(lognormal) > 1000  # the long tail

    pareto = samples(latency_distribution="pareto", latency_ms=50, latency_pareto_alpha=1.5)
    assert min(pareto) >= 50
    assert statistics.quantiles(pareto, n=100)[98] > 5 * 50  # p99 far above the minimum

    capped = samples(latency_distribution="pareto", latency_ms=50, latency_max_ms=80)
    assert max(capped) <= 80


def test_seeded_error_rates_are_within_tolerance_and_reproducible(stripe, control, connector):
    faults = {"seed": 42, "error_503_rate": 0.2, "error_500_rate": 0.1}

    def run() -> list[int]:
        control.set_faults(connector, faults, replace=True)
        return [stripe.get("/v1/payment_intents/pi_x").status_code for _ in range(600)]

    statuses = run()

    # within 4 binomial standard deviations of 20% and 10% of 600
    assert abs(statuses.count(503) - 120) <= 4 * (600 * 0.2 * 0.8) ** 0.5
    assert abs(statuses.count(500) - 60) <= 4 * (600 * 0.1 * 0.9) ** 0.5
    assert statuses.count(404) == 600 - statuses.count(503) - statuses.count(500)
    assert run() == statuses  # the same seed gives the same sequence


def test_503_is_not_processed_and_says_retry(stripe, control, connector):
    control.set_faults(connector, {"error_503_rate": 1, "limit": 1})
    key = f"k_{uuid.uuid4().hex}"

    first = stripe.create_intent(key=key)

    assert first.status_code == 503
    assert first.headers["Stripe-Should-Retry"] == "true"
    assert first.json()["error"]["type"] == "api_error"
    assert control.charges(connector) == []
    retry = stripe.create_intent(key=key)
    assert retry.status_code == 200
    assert len(control.charges(connector)) == 1


def test_plain_500_is_not_processed(stripe, control, connector):
    control.set_faults(connector, {"error_500_rate": 1, "limit": 1})
    key = f"k_{uuid.uuid4().hex}"

    assert stripe.create_intent(key=key).status_code == 500
    assert control.charges(connector) == []
    assert stripe.create_intent(key=key).status_code == 200
    assert len(control.charges(connector)) == 1


def test_processed_then_500_charges_and_a_resend_returns_the_real_result(
    stripe, control, connector
):
    control.set_faults(connector, {"processed_then_500_rate": 1, "limit": 1})
    key = f"k_{uuid.uuid4().hex}"

    first = stripe.create_intent(key=key, attempt_id="pa_p500")

    assert first.status_code == 500
    assert len(control.charges(connector)) == 1  # processed despite the 500
    resend = stripe.create_intent(key=key, attempt_id="pa_p500")
    assert resend.status_code == 200
    assert resend.headers["Idempotent-Replayed"] == "true"
    assert resend.json()["status"] == "succeeded"
    assert len(control.charges(connector)) == 1


def test_processed_then_500_can_replay_the_error_like_stripe(stripe, control, connector):
    control.set_faults(
        connector,
        {"processed_then_500_rate": 1, "limit": 1, "processed_then_500_replays_error": True},
    )
    key = f"k_{uuid.uuid4().hex}"

    assert stripe.create_intent(key=key, attempt_id="pa_r").status_code == 500
    assert stripe.create_intent(key=key, attempt_id="pa_r").status_code == 500
    # the way out is an inquiry: search by our attempt id
    found = stripe.get(
        "/v1/payment_intents/search", {"query": "metadata['attempt_id']:'pa_r'"}
    ).json()
    assert [pi["status"] for pi in found["data"]] == ["succeeded"]
    assert len(control.charges(connector)) == 1


def test_timeout_hangs_past_the_client_and_processes_nothing(stripe, control, connector):
    control.set_faults(connector, {"timeout_rate": 1, "timeout_delay_s": 2, "limit": 1})
    key = f"k_{uuid.uuid4().hex}"

    with pytest.raises(requests.ReadTimeout):
        stripe.create_intent(key=key, timeout=0.5)

    assert control.charges(connector) == []
    retry = stripe.create_intent(key=key)
    assert retry.status_code == 200
    assert len(control.charges(connector)) == 1


def test_stripe_response_lost_charges_once_and_a_resend_replays_it(stripe, control, connector):
    control.set_faults(connector, {"response_lost_rate": 1, "response_lost_delay_s": 2, "limit": 1})
    key = f"k_{uuid.uuid4().hex}"

    with pytest.raises(requests.ReadTimeout):
        stripe.create_intent(key=key, attempt_id="pa_lost", timeout=0.5)

    [charge] = control.charges(connector, reference="pa_lost")
    assert charge["status"] == "captured"
    resend = stripe.create_intent(key=key, attempt_id="pa_lost")
    assert resend.status_code == 200
    assert resend.headers["Idempotent-Replayed"] == "true"
    assert resend.json()["id"] == charge["payment_id"]
    retrieved = stripe.get(f"/v1/payment_intents/{charge['payment_id']}").json()
    assert retrieved["status"] == "succeeded"
    assert len(control.charges(connector, reference="pa_lost")) == 1


def test_adyen_response_lost_charges_once_and_a_resend_replays_it(adyen, control, connector):
    control.set_faults(connector, {"response_lost_rate": 1, "response_lost_s": 2, "limit": 1})
    key = str(uuid.uuid4())
    body = adyen.payment_body(reference="pa_lost_adyen")

    with pytest.raises(requests.ReadTimeout):
        adyen.post("/v71/payments", body, key=key, timeout=0.5)

    [charge] = control.charges(connector)
    resend = adyen.post("/v71/payments", body, key=key)
    assert resend.status_code == 200
    assert resend.json()["pspReference"] == charge["id"]
    assert resend.json()["resultCode"] == "Authorised"
    assert len(control.charges(connector)) == 1


def test_response_lost_default_hold_is_15_seconds(control, connector):
    view = control.set_faults(connector, {"response_lost_rate": 1})

    assert view["faults"]["response_lost_delay_s"] == 15


def test_short_field_names_are_accepted_as_aliases(control, connector):
    faults = control.set_faults(
        connector, {"response_lost_s": 3, "timeout_s": 4, "error_rate": 0.1}
    )["faults"]

    assert (faults["response_lost_delay_s"], faults["timeout_delay_s"]) == (3, 4)
    assert faults["error_500_rate"] == 0.1


def test_outage_switch_answers_503_until_switched_off(stripe, adyen, control, connector):
    control.set_faults(connector, {"outage": True})

    assert stripe.create_intent().status_code == 503
    down = adyen.pay()
    assert down.status_code == 503
    assert down.headers["transient-error"] == "true"
    assert control.charges(connector) == []

    control.set_faults(connector, {"outage": False})
    assert stripe.create_intent().status_code == 200


def test_outage_window_applies_only_between_from_and_until(stripe, control, connector):
    now = time.time()
    control.set_faults(connector, {"outage_from": now + 0.6, "outage_until": now + 1.2})

    before = stripe.get("/v1/payment_intents/pi_x").status_code
    time.sleep(max(0.0, now + 0.8 - time.time()))
    during = stripe.get("/v1/payment_intents/pi_x").status_code
    time.sleep(max(0.0, now + 1.3 - time.time()))
    after = stripe.get("/v1/payment_intents/pi_x").status_code

    assert (before, during, after) == (404, 503, 404)


def test_outage_drop_mode_fails_at_the_connection_level(stripe, control, connector):
    control.set_faults(connector, {"outage": True, "outage_mode": "drop"})

    with pytest.raises(requests.ConnectionError):
        stripe.create_intent()

    assert control.charges(connector) == []


def test_faults_can_be_scoped_to_operations(stripe, control, connector):
    control.set_faults(connector, {"error_503_rate": 1, "operations": ["capture"]})

    intent = stripe.create_intent(capture_method="manual")
    capture = stripe.post(f"/v1/payment_intents/{intent.json()['id']}/capture")

    assert intent.status_code == 200
    assert capture.status_code == 503


def test_limit_stops_injecting_after_n_faults(stripe, control, connector):
    control.set_faults(connector, {"error_503_rate": 1, "limit": 2})

    statuses = [stripe.get("/v1/payment_intents/pi_x").status_code for _ in range(4)]

    assert statuses == [503, 503, 404, 404]
    assert control.faults(connector)["injected"] == 2


def test_64_slow_requests_run_concurrently(stripe, control, connector):
    control.set_faults(connector, {"latency_ms": 1000})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(
            pool.map(lambda i: stripe.create_intent(attempt_id=f"pa_c{i}").status_code, range(64))
        )
    elapsed = time.monotonic() - started

    assert statuses == [200] * 64
    assert elapsed < 5, f"64 x 1 s requests took {elapsed:.1f}s: they queued"
    assert len(control.charges(connector)) == 64


def test_gunicorn_shape_serves_concurrent_slow_requests():
    """The production command: one gthread worker; state shared by all its threads."""
    base_url, stop = start_simulator(server="gunicorn")
    try:
        connector = "mca_gunicorn"
        requests.patch(
            f"{base_url}/_sim/connectors/{connector}/faults", json={"latency_ms": 1000}, timeout=5
        ).raise_for_status()

        def charge(i: int) -> int:
            return requests.post(
                f"{base_url}/stripe/{connector}/v1/payment_intents",
                data={
                    "amount": "100",
                    "currency": "eur",
                    "confirm": "true",
                    "payment_method": "pm_card_visa",
                    "metadata[attempt_id]": f"pa_g{i}",
                },
                headers={"Authorization": "Bearer sk_test_g"},
                timeout=10,
            ).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=64) as pool:
            statuses = list(pool.map(charge, range(64)))
        elapsed = time.monotonic() - started
        charges = requests.get(
            f"{base_url}/_sim/charges", params={"connector": connector}, timeout=5
        ).json()
    finally:
        stop()

    assert statuses == [200] * 64
    assert elapsed < 6
    assert charges["count"] == 64
