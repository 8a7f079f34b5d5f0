"""Which URLs we agree to POST merchant webhooks to, and which addresses we connect to.

A webhook URL is the merchant's, so it is checked against what the platform allows:
- Any mode: http(s) only, no credentials, spaces, control characters or backslashes, a valid
  port; never a link-local, cloud-metadata, unspecified or multicast address.
- Live mode: https only, and the host must resolve to public addresses only (no loopback,
  private, shared, link-local, multicast, reserved or unspecified ranges, nor an IPv6 address
  that embeds such an IPv4 address: IPv4-mapped/-compatible, 6to4, NAT64).
- Test mode: the same as live, except where the platform allows private targets in test mode
  (`WEBHOOK_TEST_MODE_PRIVATE_TARGETS`, on for development so a developer can point at their
  own machine, off in production so a test key cannot probe the internal network).

Checked when the endpoint is created or changed, and again before every delivery (DNS can
change after creation). At delivery the connection goes to the very addresses that were just
checked (`vet` returns them and the sender pins them), so a name that resolves to a public
address for the check and to an internal one a moment later (DNS rebinding) still reaches only
the checked address. Deliveries never follow redirects (apps/events/sender.py)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2048

# the instance-metadata services of the big clouds, by address and by name
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}
_METADATA_NAMES = {
    "metadata",
    "metadata.google.internal",
    "instance-data",
    "instance-data.ec2.internal",
}
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


@dataclass(frozen=True)
class UrlProblem:
    code: str
    message: str


def private_targets_allowed(livemode: bool) -> bool:
    return not livemode and bool(getattr(settings, "WEBHOOK_TEST_MODE_PRIVATE_TARGETS", False))


def check_syntax(url: str, *, livemode: bool) -> UrlProblem | None:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return UrlProblem("url_invalid", f"url must be 1 to {MAX_URL_LENGTH} characters.")
    if any(char.isspace() for char in url) or not url.isprintable() or "\\" in url:
        return UrlProblem(
            "url_invalid", "url must not contain spaces, control characters or backslashes."
        )
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
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return UrlProblem("url_invalid", "url must not contain credentials.")
    if livemode and parts.scheme != "https":
        return UrlProblem("url_insecure", "Live mode webhook endpoints must use https.")
    host = parts.hostname.rstrip(".").lower()
    literal = _literal_address(host)
    if host in _METADATA_NAMES or (literal is not None and _never_allowed(literal)):
        return _not_allowed()
    return None


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to an IPv4 host, if any."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (int(ip) >> 32 == 0 and int(ip) > 0xFFFF):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # NAT64, IPv4-compatible ::a.b.c.d
    return None


def _addresses(ip) -> list:
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    return [ip, embedded] if embedded is not None else [ip]


def _never_allowed(ip) -> bool:
    """Whatever the mode: the cloud's metadata service, link-local, unspecified, multicast."""
    return any(
        a in _METADATA_ADDRESSES or a.is_link_local or a.is_unspecified or a.is_multicast
        for a in _addresses(ip)
    )


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return all(a.is_global and not a.is_multicast for a in _addresses(ip)) and not (
        _never_allowed(ip)
    )


def _not_allowed() -> UrlProblem:
    return UrlProblem(
        "url_not_public",
        "Webhook endpoints must not point at link-local, cloud metadata, unspecified or "
        "multicast addresses.",
    )


def resolve_public(url: str) -> UrlProblem | None:
    """Every address the host resolves to must be public."""
    return vet_addresses(url)[0]


def vet_addresses(url: str) -> tuple[UrlProblem | None, tuple[str, ...]]:
    """Resolves the URL's host once: (a problem, ()) or (None, the public addresses to connect
    to, in the resolver's order)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return UrlProblem("url_unresolvable", f"The host {host!r} could not be resolved."), ()
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        return UrlProblem("url_unresolvable", f"The host {host!r} could not be resolved."), ()
    if not all(_is_public(address) for address in addresses):
        return (
            UrlProblem(
                "url_not_public",
                "Live mode webhook endpoints must resolve to public addresses "
                "(not loopback, private or link-local).",
            ),
            (),
        )
    return None, addresses


def vet(url: str, *, livemode: bool) -> tuple[UrlProblem | None, tuple[str, ...]]:
    """(a problem, ()) or (None, the addresses a delivery may connect to); an empty tuple with
    no problem means "connect by name" (test mode where private targets are allowed)."""
    problem = check_syntax(url, livemode=livemode)
    if problem is not None:
        return problem, ()
    if private_targets_allowed(livemode):
        return None, ()
    return vet_addresses(url)


def check(url: str, *, livemode: bool) -> UrlProblem | None:
    return vet(url, livemode=livemode)[0]
