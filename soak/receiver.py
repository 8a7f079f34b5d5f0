"""The merchant's webhook endpoint: a local HTTP server that verifies each delivery's Standard
Webhooks signature, records the event ids it got (a redelivery is allowed, a missing event is
not), and can be made to fail for a while (a merchant outage the platform must retry through)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MerchantEndpoint:
    def __init__(self) -> None:
        self.secret_key: bytes | None = None
        self.received: Counter = Counter()  # event id -> deliveries
        self.bad_signatures: list[str] = []
        self.refused = 0  # answered 500 on purpose
        self.failing_until = 0.0
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = endpoint.accept(
                    self.headers.get("webhook-id", ""),
                    self.headers.get("webhook-timestamp", ""),
                    self.headers.get("webhook-signature", ""),
                    body,
                )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # the platform's sender hung up (a killed worker): not our business

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/merchant/webhooks"

    def set_secret(self, secret: str) -> None:
        encoded = secret.removeprefix("whsec_")
        self.secret_key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))

    def fail_for(self, seconds: float) -> None:
        self.failing_until = time.monotonic() + seconds

    def accept(self, event_id: str, timestamp: str, signatures: str, body: bytes) -> int:
        if time.monotonic() < self.failing_until:
            with self.lock:
                self.refused += 1
            return 500
        if self.secret_key is not None:
            signed = f"{event_id}.{timestamp}.".encode() + body
            expected = base64.b64encode(
                hmac.new(self.secret_key, signed, hashlib.sha256).digest()
            ).decode()
            offered = [s.partition(",")[2] for s in signatures.split()]
            if not any(hmac.compare_digest(expected, o) for o in offered):
                with self.lock:
                    self.bad_signatures.append(event_id)
        with self.lock:
            self.received[event_id] += 1
        return 200

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
