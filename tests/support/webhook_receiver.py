"""A local HTTP endpoint (stdlib http.server in a thread) that records the webhooks it gets."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ReceivedWebhook:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[ReceivedWebhook] = []
        self._lock = threading.Condition()
        self.fail_next = 0  # answer this many requests with 500 first (to see retries)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                    else:
                        receiver.received.append(
                            ReceivedWebhook(
                                path=self.path,
                                headers={k.lower(): v for k, v in self.headers.items()},
                                body=body,
                                received_at=time.monotonic(),
                            )
                        )
                        receiver._lock.notify_all()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b"[accepted]")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/webhooks/psp/mca_test"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        """Block until at least `count` webhooks arrived; return all received so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} webhooks within {timeout}s, got {len(self.received)}"
                    )
                self._lock.wait(remaining)
            return list(self.received)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
