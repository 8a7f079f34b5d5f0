"""Merchant webhook URLs against the platform's rule (issue 11, item 2): what a merchant's URL
may point at, checked at creation and again at every delivery; the delivery connects to the very
address it checked (DNS rebinding), never follows a redirect, and in production a test key
cannot reach the internal network."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3.util.connection

from apps.core.errors import InvalidRequestError
from apps.events import relay, services, url_safety
from apps.events.models import WebhookDelivery, WebhookDeliveryAttempt
from apps.events.services import outbox_record
from tests.support.webhook_receiver import WebhookReceiver


def _deliver_one(merchant, livemode=False) -> WebhookDeliveryAttempt:
    outbox_record(
        merchant_id=merchant.id,
        livemode=livemode,
        object_type="payment_intent",
        object_id="pi_1",
        event_type="payment_intent.succeeded",
        payload={"id": "pi_1", "object": "payment_intent", "status": "succeeded"},
    )
    relay.outbox_relay()
    services.webhook_deliveries_deliver_due()
    return WebhookDeliveryAttempt.objects.get()


@pytest.fixture
def fake_dns(monkeypatch):
    """Names resolve to what the test says, one answer per lookup (a rebinding DNS server);
    IP literals resolve to themselves. Nothing leaves the machine."""
    answers: dict[str, list[str]] = {}
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            asked.append(host)
            queue = answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(url_safety.socket, "getaddrinfo", getaddrinfo)
    return answers, asked


@pytest.mark.parametrize(
    "url",
    [
        "https://[::127.0.0.1]/hooks",  # IPv4-compatible loopback
        "https://[::ffff:10.0.0.5]/hooks",  # IPv4-mapped private
        "https://[2002:a00:5::1]/hooks",  # 6to4 of 10.0.0.5
        "https://[64:ff9b::a9fe:a9fe]/hooks",  # NAT64 of the metadata service
        "https://[fd00:ec2::254]/hooks",  # AWS metadata over IPv6
        "https://100.64.0.1/hooks",  # carrier-grade NAT (shared)
    ],
)
def test_live_mode_refuses_ipv6_and_shared_forms_of_internal_addresses(merchant, system_actor, url):
    with pytest.raises(InvalidRequestError) as refused:
        services.webhook_endpoint_create(
            merchant=merchant, livemode=True, url=url, enabled_events=["*"], actor=system_actor
        )
    assert (refused.value.code, refused.value.param) == ("url_not_public", "url")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[fe80::1]/hooks",
        "http://0.0.0.0:8000/hooks",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_test_mode_never_reaches_the_cloud_metadata_service_or_link_local(
    merchant, system_actor, url
):
    with pytest.raises(InvalidRequestError) as refused:
        services.webhook_endpoint_create(
            merchant=merchant, livemode=False, url=url, enabled_events=["*"], actor=system_actor
        )
    assert refused.value.param == "url"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000\\@hooks.example.com/",  # browsers and servers disagree on "\"
        "http://user:pw@127.0.0.1:8000/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:8000/a\x00b",
    ],
)
def test_urls_read_differently_by_different_parsers_are_refused(merchant, system_actor, url):
    with pytest.raises(InvalidRequestError) as refused:
        services.webhook_endpoint_create(
            merchant=merchant, livemode=False, url=url, enabled_events=["*"], actor=system_actor
        )
    assert (refused.value.code, refused.value.param) == ("url_invalid", "url")


def test_in_production_a_test_key_cannot_reach_the_internal_network(
    merchant, system_actor, settings, receiver
):
    # development: a test endpoint on the developer's own machine is fine
    issued = services.webhook_endpoint_create(
        merchant=merchant,
        livemode=False,
        url=receiver.url,
        enabled_events=["*"],
        actor=system_actor,
    )
    settings.WEBHOOK_TEST_MODE_PRIVATE_TARGETS = False  # production's setting
    with pytest.raises(InvalidRequestError) as refused:
        services.webhook_endpoint_create(
            merchant=merchant,
            livemode=False,
            url="http://10.0.0.8/hooks",
            enabled_events=["*"],
            actor=system_actor,
        )
    assert refused.value.code == "url_not_public"
    # an endpoint created before the switch is refused at delivery: nothing reaches it
    attempt = _deliver_one(merchant)
    assert attempt.delivery.endpoint_id == issued.endpoint.pk
    assert attempt.error.startswith("refused:") and attempt.status_code is None
    assert receiver.received == []


def test_a_delivery_connects_to_the_address_it_checked_not_a_rebound_one(
    merchant, system_actor, fake_dns, monkeypatch
):
    answers, asked = fake_dns
    answers["hooks.example.com"] = ["93.184.215.14"]
    services.webhook_endpoint_create(
        merchant=merchant,
        livemode=True,
        url="https://hooks.example.com:8443/pay?x=1",
        enabled_events=["*"],
        actor=system_actor,
    )
    # the name's next answers point inside: a check-then-resolve-again sender would follow
    answers["hooks.example.com"] = ["93.184.215.14", "127.0.0.1", "127.0.0.1"]
    asked.clear()
    connects = []

    def create_connection(address, *args, **kwargs):
        connects.append(address)  # and never a real connection to a public address
        raise ConnectionRefusedError("test: no network")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    attempt = _deliver_one(merchant, livemode=True)
    assert connects == [("93.184.215.14", 8443)]
    assert asked == ["hooks.example.com"]  # resolved once, by the check
    assert attempt.error.startswith("connection failed") and not attempt.succeeded


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_delivery_never_follows_a_redirect(merchant, system_actor):
    inside = WebhookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    _Redirect.target = inside.url
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        services.webhook_endpoint_create(
            merchant=merchant,
            livemode=False,
            url=f"http://127.0.0.1:{server.server_address[1]}/hooks",
            enabled_events=["*"],
            actor=system_actor,
        )
        attempt = _deliver_one(merchant)
        assert (attempt.status_code, attempt.error) == (307, "redirects are not followed")
        assert WebhookDelivery.objects.get().status != "succeeded"
        assert inside.received == []
    finally:
        server.shutdown()
        server.server_close()
        inside.stop()
