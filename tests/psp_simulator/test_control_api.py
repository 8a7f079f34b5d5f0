"""The `/_sim/…` control API and the `simulator_faults` management command."""

from __future__ import annotations

import io
import json
import time

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.psp_simulator.control_client import (
    SimulatorControl,
    SimulatorControlError,
    fault_patch_from_options,
    parse_instant,
    run_simulator_faults,
)
from apps.psp_simulator.management.commands.simulator_faults import Command

pytestmark = pytest.mark.slow


def test_health(simulator_url):
    response = requests.get(f"{simulator_url}/_sim/health", timeout=5)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_faults_put_replaces_patch_merges_delete_resets(simulator_url, connector):
    url = f"{simulator_url}/_sim/connectors/{connector}/faults"

    put = requests.put(url, json={"latency_ms": 200, "error_503_rate": 0.5}, timeout=5)
    patch = requests.patch(url, json={"seed": 9}, timeout=5)
    replaced = requests.put(url, json={"timeout_rate": 0.1}, timeout=5)

    assert put.json()["faults"]["latency_ms"] == 200
    assert (patch.json()["faults"]["error_503_rate"], patch.json()["faults"]["seed"]) == (0.5, 9)
    faults = replaced.json()["faults"]
    assert (faults["timeout_rate"], faults["latency_ms"], faults["error_503_rate"]) == (0.1, 0, 0)
    assert requests.get(url, timeout=5).json()["faults"] == faults
    reset = requests.delete(url, timeout=5).json()["faults"]
    assert reset["timeout_rate"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"error_500_rate": 1.5},
        {"error_500_rate": 0.6, "error_503_rate": 0.6},
        {"latency_distribution": "zipf"},
        {"operations": ["teleport"]},
        {"latency_msec": 10},
        [1, 2],
    ],
    ids=["rate>1", "sum>1", "distribution", "operation", "unknown-field", "not-object"],
)
def test_invalid_faults_are_refused_and_change_nothing(simulator_url, connector, body):
    url = f"{simulator_url}/_sim/connectors/{connector}/faults"

    response = requests.put(url, json=body, timeout=5)

    assert response.status_code == 400
    assert "error" in response.json()
    assert requests.get(url, timeout=5).json()["faults"]["error_500_rate"] == 0


def test_charges_are_listed_per_connector_and_filtered(stripe, adyen, control, connector):
    stripe.create_intent(attempt_id="pa_a")
    stripe.create_intent("4000000000000002", attempt_id="pa_b")
    adyen.pay(reference="pa_c")

    everything = control.charges(connector)
    declined = control.charges(connector, status="declined")
    by_reference = control.charges(connector, reference="pa_c")

    assert len(everything) == 3
    assert [c["reference"] for c in declined] == ["pa_b"]
    assert [c["dialect"] for c in by_reference] == ["adyen"]
    assert control.charges("mca_nobody") == []
    assert all("number" not in c for c in everything)  # only last4 ever leaves


def test_connector_overview_and_forget(simulator_url, stripe, connector):
    stripe.create_intent()

    listed = requests.get(f"{simulator_url}/_sim/connectors", timeout=5).json()["data"]
    detail = requests.get(f"{simulator_url}/_sim/connectors/{connector}", timeout=5).json()
    deleted = requests.delete(f"{simulator_url}/_sim/connectors/{connector}", timeout=5).json()

    assert connector in [c["name"] for c in listed]
    assert (detail["payments"], detail["dialects"]) == (1, ["stripe"])
    assert deleted == {"name": connector, "deleted": True}
    assert (
        requests.get(f"{simulator_url}/_sim/connectors/{connector}", timeout=5).json()["payments"]
        == 0
    )


def test_card_table_is_served(simulator_url):
    data = requests.get(f"{simulator_url}/_sim/cards", timeout=5).json()["data"]

    by_number = {card["number"]: card for card in data}
    assert by_number["4000000000009995"]["decline_code"] == "insufficient_funds"
    assert by_number["4000000000009995"]["adyen_refusal_reason_code"] == "12"


def test_unknown_control_paths_and_methods(simulator_url):
    assert requests.get(f"{simulator_url}/_sim/nope", timeout=5).status_code == 404
    assert requests.post(f"{simulator_url}/_sim/health", timeout=5).status_code == 405
    assert requests.get(f"{simulator_url}/paypal/x/v1/orders", timeout=5).status_code == 404


def test_settings_are_validated(simulator_url, connector):
    url = f"{simulator_url}/_sim/connectors/{connector}/settings"

    assert requests.patch(url, json={"slow_card_delay_ms": -1}, timeout=5).status_code == 400
    assert requests.patch(url, json={"colour": "red"}, timeout=5).status_code == 400
    ok = requests.patch(url, json={"slow_card_delay_ms": 100}, timeout=5)
    assert ok.json()["slow_card_delay_ms"] == 100


# -- the management command ----------------------------------------------------------------


def test_command_options_map_to_fault_fields():
    patch = fault_patch_from_options(
        {
            "latency_ms": 200.0,
            "latency_jitter_ms": 50.0,
            "error_rate": 0.1,
            "unavailable_rate": None,
            "response_lost_rate": 1.0,
            "outage": "off",
            "operations": "authorize, capture",
            "seed": 7,
        }
    )

    assert patch == {
        "latency_ms": 200.0,
        "latency_jitter_ms": 50.0,
        "error_500_rate": 0.1,
        "response_lost_rate": 1.0,
        "outage": False,
        "outage_from": None,
        "outage_until": None,
        "operations": ["authorize", "capture"],
        "seed": 7,
    }
    assert fault_patch_from_options({"operations": "all"}) == {"operations": None}


def test_outage_instants_accept_unix_iso_and_relative():
    assert parse_instant("1700000000") == 1700000000
    assert parse_instant("2023-11-14T22:13:20+00:00") == 1700000000
    assert parse_instant("+60") == pytest.approx(time.time() + 60, abs=2)
    with pytest.raises(ValueError):
        parse_instant("2023-11-14T22:13:20")  # no timezone: ambiguous


def test_run_simulator_faults_against_the_running_simulator(simulator_url, stripe, connector):
    result = run_simulator_faults(
        connector, base_url=simulator_url, outage="on", latency_ms=10.0, latency_jitter_ms=None
    )
    assert (result["faults"]["outage"], result["faults"]["latency_ms"]) == (True, 10.0)
    assert stripe.create_intent().status_code == 503

    run_simulator_faults(connector, base_url=simulator_url, outage="off")
    assert stripe.create_intent().status_code == 200

    shown = run_simulator_faults(connector, base_url=simulator_url, show=True)
    assert shown["faults"]["latency_ms"] == 10.0  # PATCH kept the earlier option
    cleared = run_simulator_faults(connector, base_url=simulator_url, reset=True)
    assert cleared["faults"]["latency_ms"] == 0


def test_management_command_through_call_command(simulator_url, connector):
    out = io.StringIO()

    call_command(
        Command(),
        connector,
        "--error-rate",
        "0.25",
        "--response-lost-rate",
        "0.5",
        "--response-lost-s",
        "3",
        "--seed",
        "11",
        url=simulator_url,
        stdout=out,
    )

    printed = json.loads(out.getvalue())
    assert printed["faults"]["error_500_rate"] == 0.25
    assert printed["faults"]["response_lost_delay_s"] == 3
    assert SimulatorControl(simulator_url).faults(connector)["faults"]["seed"] == 11


def test_management_command_reports_an_unreachable_simulator(connector):
    with pytest.raises(CommandError, match="unreachable"):
        call_command(Command(), connector, "--outage", "on", url="http://127.0.0.1:9")


def test_management_command_reports_invalid_values(simulator_url, connector):
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command(Command(), connector, "--error-rate", "2", url=simulator_url)


def test_control_client_raises_on_errors(simulator_url):
    with pytest.raises(SimulatorControlError):
        SimulatorControl(simulator_url).call("GET", "/nope")
