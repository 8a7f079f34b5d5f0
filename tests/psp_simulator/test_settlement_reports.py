"""The simulator's settlement batches, served in each dialect's real format and read back by our
adapters' streaming parsers (issue 14)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from apps.psp_adapters.contract import ConnectorConfig
from apps.psp_adapters.registry import get_adapter
from apps.psp_simulator.settlement import ADYEN_COLUMNS, DISCREPANCY_KINDS

TODAY = datetime.now(UTC).date()
TOMORROW = (TODAY + timedelta(days=1)).isoformat()


@pytest.fixture
def stripe_adapter(simulator_url, connector):
    return get_adapter(
        ConnectorConfig(
            connector_id=connector,
            connector_type="stripe",
            base_url=f"{simulator_url}/stripe/{connector}",
            credentials={"api_key": "sk_test_recon"},
        )
    )


@pytest.fixture
def adyen_adapter(simulator_url, connector):
    return get_adapter(
        ConnectorConfig(
            connector_id=connector,
            connector_type="adyen",
            base_url=f"{simulator_url}/adyen/{connector}",
            credentials={"api_key": "AQE_recon", "merchant_account": "SimShop"},
        )
    )


def _read(adapter, ref):
    raw = b"".join(adapter.download_settlement_report(ref))
    lines = list(adapter.iter_settlement_report(raw.splitlines(keepends=True), filename=ref.name))
    return raw, lines


def test_adyen_batch_is_the_settlement_details_report(adyen, adyen_adapter, control, connector):
    payment = adyen.pay(amount=10000, reference="pa_recon_1").json()
    refund = adyen.post(
        f"/v71/payments/{payment['pspReference']}/refunds",
        {
            "merchantAccount": "SimShop",
            "amount": {"value": 2500, "currency": "EUR"},
            "reference": "re_recon_1",
        },
    ).json()

    assert adyen_adapter.list_settlement_reports(cursor="", until=TOMORROW) == []  # not yet
    new = control.settle(connector, up_to=TODAY.isoformat())
    assert new["new_batches"] == []  # T+1: nothing settles on the day itself
    new = control.settle(connector, up_to=TOMORROW)
    assert new["new_batches"] == [1]

    (ref,) = adyen_adapter.list_settlement_reports(cursor="", until=TOMORROW)
    assert ref.name == "settlement_detail_report_batch_1.csv"
    raw, lines = _read(adyen_adapter, ref)
    header = next(csv.reader(io.StringIO(raw.decode())))
    assert tuple(header) == ADYEN_COLUMNS
    settled, refunded, payout = lines
    assert (settled.record_type, settled.psp_reference, settled.merchant_reference) == (
        "charge",
        payment["pspReference"],
        "pa_recon_1",
    )
    # Interchange++: 0.80% + 0.20% + 0.30% of 100.00 plus 0.11 commission
    assert (settled.gross, settled.fee, settled.net) == (10000, 141, 9859)
    assert (refunded.record_type, refunded.modification_reference) == (
        "refund",
        refund["pspReference"],
    )
    assert (refunded.gross, refunded.net, refunded.merchant_reference) == (
        -2500,
        -2500,
        "re_recon_1",
    )
    assert payout.record_type == "payout" and payout.net == -(9859 - 2500)
    assert {line.batch for line in lines} == {"1"}
    # the next listing starts after batch 1
    assert adyen_adapter.list_settlement_reports(cursor="1", until=TOMORROW) == []


def test_stripe_report_run_then_file(stripe, stripe_adapter, control, connector):
    intent = stripe.create_intent(amount=2000, attempt_id="pa_recon_2").json()
    control.settle(connector, up_to=TOMORROW)

    refs = stripe_adapter.list_settlement_reports(cursor=TODAY.isoformat(), until=TOMORROW)
    (ref,) = refs
    assert ref.url.endswith("/contents") and ref.cursor == TOMORROW
    _, (line,) = _read(stripe_adapter, ref)
    assert (line.record_type, line.psp_reference, line.merchant_reference) == (
        "charge",
        intent["id"],
        "pa_recon_2",
    )
    assert (line.gross, line.fee, line.net) == (2000, 55, 1945)  # 1.5% + 0.25
    (payout,) = stripe_adapter.settlement_payouts([line.payout_id])
    assert (payout.amount, payout.currency) == (1945, "eur")


@pytest.mark.parametrize("kind", DISCREPANCY_KINDS)
def test_each_discrepancy_is_injected_and_recorded(stripe, control, connector, kind):
    control.set_settlement(connector, discrepancies={kind: 1.0}, seed=7)
    intent = stripe.create_intent(amount=5000).json()
    view = control.settle(connector, up_to=TOMORROW)
    kinds = [item["kind"] for item in view["injected"]]
    if kind == "late_settlement":
        assert view["new_batches"] == []  # arrives a batch later
        later = (TODAY + timedelta(days=2)).isoformat()
        view = control.settle(connector, up_to=later)
        assert view["new_batches"] == [1]
    assert kind in kinds
    if kind != "payout_mismatch" and kind != "unknown_transaction":
        assert any(intent["id"] in str(item) for item in view["injected"])


def test_settlement_settings_are_validated(control, connector):
    from apps.psp_simulator.control_client import SimulatorControlError

    with pytest.raises(SimulatorControlError, match="unknown discrepancy kind"):
        control.set_settlement(connector, discrepancies={"nonsense": 1})
    with pytest.raises(SimulatorControlError, match="between 0 and 1"):
        control.set_settlement(connector, discrepancies={"missing_capture": 2})
