"""Which URLs we agree to POST merchant webhooks to.

Live mode: https only, and the host must resolve to public addresses only (no loopback,
private, link-local, multicast, reserved or unspecified ranges), checked when the endpoint is
created or changed and again before every delivery, because DNS can change after creation.
Test mode: http or https, localhost allowed, so a developer can point at their own machine."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class UrlProblem:
    code: str
    message: str


def check_syntax(url: str, *, livemode: bool) -> UrlProblem | None:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return UrlProblem("url_invalid", f"url must be 1 to {MAX_URL_LENGTH} characters.")
    if any(char.isspace() for char in url) or not url.isprintable():
        return UrlProblem("url_invalid", "url must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        return UrlProblem("url_invalid", "url is not a valid URL.")
    if parts.scheme not in ("http", "https"):
        return UrlProblem("url_invalid", "url must start with https:// (or http:// in test mode).")
    if not parts.hostname:
        return UrlProblem("url_invalid", "url has no host.")
    if port == 0:
        return UrlProblem("url_invalid", "url has an invalid port.")
    if parts.username or parts.password:
        return UrlProblem("url_invalid", "url must not contain credentials.")
    if livemode and parts.scheme != "https":
        return UrlProblem("url_insecure", "Live mode webhook endpoints must use https.")
    return None


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_public(url: str) -> UrlProblem | None:
    """Live mode only: every address the host resolves to must be public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return UrlProblem("url_unresolvable", f"The host {host!r} could not be resolved.")
    addresses = {info[4][0] for info in infos}
    if not addresses:
        return UrlProblem("url_unresolvable", f"The host {host!r} could not be resolved.")
    if not all(_is_public(address) for address in addresses):
        return UrlProblem(
            "url_not_public",
            "Live mode webhook endpoints must resolve to public addresses "
            "(not loopback, private or link-local).",
        )
    return None


def check(url: str, *, livemode: bool) -> UrlProblem | None:
    problem = check_syntax(url, livemode=livemode)
    if problem is None and livemode:
        problem = resolve_public(url)
    return problem
