"""A threaded stdlib HTTP server for the simulator (tests and `python -m apps.psp_simulator`).

One thread per connection and a deep listen backlog, so 64+ slow requests (latency faults,
hanging timeouts, lost responses) are in flight at once without queueing behind each other.
"""

from __future__ import annotations

import contextlib
import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

logger = logging.getLogger("psp_simulator.server")


class SimulatorRequestHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        # lets the outage "drop" mode close the caller's connection without an answer
        environ["psp_simulator.socket"] = self.connection
        return environ

    def handle(self) -> None:
        # the caller may go away first (its read timeout, or a dropped connection)
        with contextlib.suppress(OSError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def make_server(host: str, port: int, app) -> ThreadingWSGIServer:
    server = ThreadingWSGIServer((host, port), SimulatorRequestHandler)
    server.set_app(app)
    return server
