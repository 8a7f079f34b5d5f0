"""The PSP's own record of what it charged, captured, refunded and canceled.

Only the PSP simulator exposes one (its control API, `GET /_sim/charges` and `/_sim/refunds`,
docs/psp-simulator.md); real PSPs would be read from their settlement reports, which the
reconciliation app does not ingest yet. So the PSP-side checks run where a simulator answers
(`make run`, `make soak`, tests) and are reported as skipped elsewhere (production).

Plain HTTP on purpose: the simulator is another process, and no platform app imports its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests


class PspRecordUnavailable(Exception):
    pass


@dataclass(frozen=True)
class PspRecord:
    url: str
    charges: list[dict]  # id, connector, payment_id, status, amount, amount_captured, …
    refunds: list[dict]  # id, connector, payment_id, status, amount, reference, …


def load_simulator_record(url: str, *, timeout: float = 30.0) -> PspRecord:
    """Everything the simulator at `url` charged and refunded, across its connectors."""
    base = url.rstrip("/")
    session = requests.Session()
    try:
        health = session.get(f"{base}/_sim/health", timeout=min(timeout, 5.0))
        if health.status_code != 200:
            raise PspRecordUnavailable(f"{base}: /_sim/health answered {health.status_code}")
        charges = session.get(f"{base}/_sim/charges", timeout=timeout)
        refunds = session.get(f"{base}/_sim/refunds", timeout=timeout)
        charges.raise_for_status()
        refunds.raise_for_status()
        return PspRecord(url=base, charges=charges.json()["data"], refunds=refunds.json()["data"])
    except requests.ConnectionError as exc:
        raise PspRecordUnavailable(f"nothing answers at {base}") from exc
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise PspRecordUnavailable(f"{base}: {exc.__class__.__name__}: {exc}"[:300]) from exc
    finally:
        session.close()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "localhost":
        host = "127.0.0.1"
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, host, port


def served_by(endpoint: str, simulator_url: str) -> bool:
    """Does a connector whose PSP calls go to `endpoint` talk to the simulator at
    `simulator_url`? (`http://127.0.0.1:8090/stripe/mca_1` is served by `http://127.0.0.1:8090`.)"""
    return bool(endpoint) and _origin(endpoint) == _origin(simulator_url)
