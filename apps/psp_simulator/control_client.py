"""A small client for the simulator's control API (stdlib only).

Used by `manage.py simulator_faults` and handy in tests and scripts:

    control = SimulatorControl()  # SIMULATOR_URL, default http://127.0.0.1:8090
    control.set_faults("mca_stripe_1", {"response_lost_rate": 1, "limit": 1})
    control.charges("mca_stripe_1", reference="pa_123")
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8090"


def simulator_url() -> str:
    return os.environ.get("SIMULATOR_URL", DEFAULT_SIMULATOR_URL).rstrip("/")


class SimulatorControlError(Exception):
    pass


class SimulatorControl:
    def __init__(self, base_url: str | None = None, timeout: float = 5.0) -> None:
        self.base_url = (base_url or simulator_url()).rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any):
        url = f"{self.base_url}/_sim{path}"
        params = {k: v for k, v in query.items() if v is not None}
        if params:
            url = f"{url}?{urlencode(params)}"
        data = json.dumps(body).encode() if body is not None else None
        # the simulator's own http(s) URL, never user input
        request = urllib.request.Request(  # noqa: S310
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise SimulatorControlError(f"{method} {url}: HTTP {exc.code}: {detail}") from exc
        except OSError as exc:
            raise SimulatorControlError(f"{method} {url}: simulator unreachable ({exc})") from exc

    # connectors and faults
    def health(self) -> dict[str, Any]:
        return self.call("GET", "/health")

    def reset(self) -> dict[str, Any]:
        return self.call("POST", "/reset")

    def faults(self, connector: str) -> dict[str, Any]:
        return self.call("GET", f"/connectors/{quote(connector)}/faults")

    def set_faults(
        self, connector: str, faults: dict[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        method = "PUT" if replace else "PATCH"
        return self.call(method, f"/connectors/{quote(connector)}/faults", faults)

    def reset_faults(self, connector: str) -> dict[str, Any]:
        return self.call("DELETE", f"/connectors/{quote(connector)}/faults")

    def update_settings(self, connector: str, **settings: float) -> dict[str, Any]:
        return self.call("PATCH", f"/connectors/{quote(connector)}/settings", settings)

    # webhooks
    def register_webhook(
        self, connector: str, url: str, secret: str = "", dialect: str | None = None, **switches
    ) -> dict[str, Any]:
        body = {"url": url, "secret": secret, "dialect": dialect, **switches}
        return self.call("PUT", f"/connectors/{quote(connector)}/webhook", body)

    def update_webhook(self, connector: str, **switches: Any) -> dict[str, Any]:
        return self.call("PATCH", f"/connectors/{quote(connector)}/webhook", switches)

    def unregister_webhook(self, connector: str) -> dict[str, Any]:
        return self.call("DELETE", f"/connectors/{quote(connector)}/webhook")

    def webhook_deliveries(self, connector: str | None = None, **filters) -> list[dict[str, Any]]:
        return self.call("GET", "/webhooks", connector=connector, **filters)["data"]

    def flush_webhooks(self, connector: str | None = None) -> int:
        return self.call("POST", "/webhooks/flush", connector=connector)["released"]

    # what really happened
    def charges(self, connector: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        return self.call("GET", "/charges", connector=connector, **filters)["data"]

    def refunds(self, connector: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        return self.call("GET", "/refunds", connector=connector, **filters)["data"]

    def payouts(self, connector: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        return self.call("GET", "/payouts", connector=connector, **filters)["data"]

    def disputes(self, connector: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        return self.call("GET", "/disputes", connector=connector, **filters)["data"]

    def open_dispute(self, connector: str, payment_id: str, **options: Any) -> dict[str, Any]:
        """Opens a dispute on a captured payment (reason, amount, inquiry, due_in_days)."""
        return self.call(
            "POST", "/disputes", {"connector": connector, "payment_id": payment_id, **options}
        )

    def dispute_action(self, dispute_id: str, action: str) -> dict[str, Any]:
        """escalate | second_chargeback | expire | win | lose."""
        return self.call("POST", f"/disputes/{quote(dispute_id)}/{action}")


# -- the management command's logic, testable without Django ---------------------------------

# command-line option -> fault field
OPTION_FIELDS = {
    "latency_ms": "latency_ms",
    "latency_jitter_ms": "latency_jitter_ms",
    "latency_distribution": "latency_distribution",
    "latency_stddev_ms": "latency_stddev_ms",
    "latency_sigma": "latency_sigma",
    "latency_alpha": "latency_pareto_alpha",
    "latency_max_ms": "latency_max_ms",
    "error_rate": "error_500_rate",
    "unavailable_rate": "error_503_rate",
    "processed_then_500_rate": "processed_then_500_rate",
    "timeout_rate": "timeout_rate",
    "timeout_s": "timeout_delay_s",
    "response_lost_rate": "response_lost_rate",
    "response_lost_s": "response_lost_delay_s",
    "rejected_rate": "rejected_rate",
    "rejected_status": "rejected_status",
    "outage_mode": "outage_mode",
    "limit": "limit",
    "seed": "seed",
}


def parse_instant(value: str) -> float:
    """Unix seconds, an ISO 8601 time, or `+N` seconds from now."""
    value = value.strip()
    if value.startswith("+"):
        return time.time() + float(value[1:])
    try:
        return float(value)
    except ValueError:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r}: give a timezone (e.g. +00:00)") from None
        return parsed.timestamp()


def fault_patch_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """Turn the command's options (None = not given) into a faults PATCH body."""
    patch: dict[str, Any] = {}
    for option, field in OPTION_FIELDS.items():
        if options.get(option) is not None:
            patch[field] = options[option]
    outage = options.get("outage")
    if outage is not None:
        patch["outage"] = outage == "on"
        if outage == "off":  # "off" means off: also drop a scheduled window
            patch["outage_from"] = None
            patch["outage_until"] = None
    for option in ("outage_from", "outage_until"):
        if options.get(option) is not None:
            patch[option] = parse_instant(str(options[option]))
    replays = options.get("processed_then_500_replays_error")
    if replays is not None:
        patch["processed_then_500_replays_error"] = replays == "on"
    operations = options.get("operations")
    if operations is not None:
        names = [name.strip() for name in operations.split(",") if name.strip()]
        patch["operations"] = None if names in ([], ["all"]) else names
    return patch


def run_simulator_faults(
    connector: str,
    *,
    base_url: str | None = None,
    reset: bool = False,
    show: bool = False,
    replace: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Apply fault options to one connector and return the simulator's resulting view."""
    control = SimulatorControl(base_url)
    if show:
        return control.faults(connector)
    if reset:
        control.reset_faults(connector)
    patch = fault_patch_from_options(options)
    if patch or replace:
        return control.set_faults(connector, patch, replace=replace)
    return control.faults(connector)


# settlement batches and reports (issue 14)
def _settlement(self: SimulatorControl, connector: str) -> dict[str, Any]:
    return self.call("GET", f"/connectors/{quote(connector)}/settlement")


def _set_settlement(self: SimulatorControl, connector: str, **settings: Any) -> dict[str, Any]:
    return self.call("PATCH", f"/connectors/{quote(connector)}/settlement", settings)


def _settle(self: SimulatorControl, connector: str, up_to: str) -> dict[str, Any]:
    """Builds every settlement batch due up to `up_to` (YYYY-MM-DD) now: no clock, no sleep."""
    return self.call("POST", f"/connectors/{quote(connector)}/settlement/settle", {"up_to": up_to})


SimulatorControl.settlement = _settlement  # type: ignore[attr-defined]
SimulatorControl.set_settlement = _set_settlement  # type: ignore[attr-defined]
SimulatorControl.settle = _settle  # type: ignore[attr-defined]
