"""A local TCP listener that records every connection made to it and every byte it receives,
and answers anything with an HTTP 200 JSON body, as an attacker's endpoint would. Tests use it
to prove that nothing (not even a TLS handshake or a TCP connection) reached a URL."""

from __future__ import annotations

import socket
import threading


class ConnectionRecorder:
    def __init__(self) -> None:
        self.connections = 0
        self.received = b""
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            conn.settimeout(0.3)
            try:
                while True:  # everything the client sends, until it pauses
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        break
                    if not data:
                        break
                    with self._lock:
                        self.received += data
                body = b'{"id": "pi_stolen", "status": "succeeded"}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
            except OSError:
                pass
            finally:
                conn.close()

    def assert_nothing_received(self) -> None:
        with self._lock:
            assert (self.connections, self.received) == (0, b""), (
                f"{self.connections} connection(s) reached the listener: {self.received[:200]!r}"
            )

    def stop(self) -> None:
        self._stopped.set()
        self._sock.close()
        self._thread.join(timeout=2)
