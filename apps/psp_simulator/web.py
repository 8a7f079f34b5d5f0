"""Just enough HTTP for a framework-free WSGI app: a request, a response, Stripe-style forms."""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, parse_qsl

MAX_BODY_BYTES = 1024 * 1024


class BadRequest(Exception):
    """A request body that cannot be parsed; each dialect renders it in its own error shape."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    environ: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, MAX_BODY_BYTES)) if length > 0 else b""
        path = environ.get("PATH_INFO") or "/"
        # PEP 3333 hands PATH_INFO over as latin-1 decoded bytes
        path = path.encode("latin-1").decode("utf-8", "replace")
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=path,
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
            environ=environ,
        )

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def query_value(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def form_pairs(self) -> list[tuple[str, str]]:
        try:
            return parse_qsl(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise BadRequest("Request body is not valid UTF-8.") from exc

    def form(self) -> dict[str, Any]:
        """Stripe-style form body: `a[b][c]=v` nests, `a[]=v` appends to a list."""
        return parse_nested(self.form_pairs())

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("Request body is not valid JSON.") from exc

    def base_url(self) -> str:
        """The simulator's own URL as the caller reached it (for 3-D Secure redirect links)."""
        scheme = self.environ.get("wsgi.url_scheme", "http")
        host = self.header("host") or (
            f"{self.environ.get('SERVER_NAME', '127.0.0.1')}:{self.environ.get('SERVER_PORT', '')}"
        )
        return f"{scheme}://{host}"


def parse_nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head]
        if rest:
            parts += rest.rstrip("]").split("][")
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            next_is_list = not last and parts[index + 1] == ""
            if isinstance(node, list):
                if last:
                    node.append(value)
                else:
                    child: Any = [] if next_is_list else {}
                    node.append(child)
                    node = child
                continue
            if last:
                node[part] = value
            else:
                existing = node.get(part)
                if not isinstance(existing, (dict, list)):
                    existing = [] if next_is_list else {}
                    node[part] = existing
                node = existing
    return root


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    # set by the idempotency layer: whether this result is kept for replays
    store: bool = True
    # drop the TCP connection instead of answering (outage "drop" mode)
    drop_connection: bool = False

    def status_line(self) -> str:
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Unknown"
        return f"{self.status} {phrase}"

    def with_header(self, name: str, value: str) -> Response:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))
        return self

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None):
    body = json.dumps(payload, indent=2, sort_keys=False).encode()
    return Response(
        status=status,
        body=body,
        headers=[("Content-Type", "application/json"), *(headers or [])],
    )


def html_response(status: int, html: str) -> Response:
    return Response(status, html.encode(), [("Content-Type", "text/html; charset=utf-8")])


def redirect(location: str) -> Response:
    return Response(302, b"", [("Location", location)])


def drop_connection(environ: dict[str, Any]) -> bool:
    """Close the caller's TCP connection without an answer; False if the server hides its socket.

    gunicorn exposes the socket as `gunicorn.socket`; our stdlib server as `psp_simulator.socket`.
    The server's own write afterwards fails with EPIPE, which both servers ignore quietly.
    """
    sock = environ.get("gunicorn.socket") or environ.get("psp_simulator.socket")
    if sock is None:
        return False
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    return True
