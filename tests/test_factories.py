"""The factories make what production makes: each row through its service (audit entry,
secrets sealed or hashed, journals posted, states reached by transitions), valid for the
database's CHECKs and the ledger's invariants. A factory that wrote rows by hand, or left an
intent in another state than asked, fails here."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.connectors import services as connector_services
from apps.core.errors import InvalidRequestError
from apps.core.models import AuditLogEntry
from apps.events import services as event_services
from apps.events.signing import secret_key_bytes
from apps.intents.models import PaymentAttempt
from apps.ledger import chart
from apps.ledger.models import JournalTransaction
from apps.merchants.models import ApiKey
from apps.vault import services as vault_services
from tests.factories import (
    ADYEN_CREDENTIALS,
    ADYEN_LIVE_URL_PREFIX,
    HARD_DECLINE_CARD,
    STRIPE_CREDENTIALS,
    US_BANK,
    ApiKeyFactory,
    ConnectorFactory,
    JournalTransactionFactory,
    MerchantFactory,
    PaymentAttemptFactory,
    PaymentIntentFactory,
    PaymentMethodFactory,
    PayoutFactory,
    RefundFactory,
    RoutingProfileFactory,
    RoutingSettingsFactory,
    SellerFactory,
    StaffUserFactory,
    WebhookEndpointFactory,
)
from tests.intents.conftest import (  # noqa: F401  (fixtures)
    adyen_connector,
    connector_names,
    connectors,
    platform_simulator,
    simulator_url,
    stripe_connector,
)
from tests.ledger import support as ledger_support

pytestmark = pytest.mark.django_db


def _audited(action: str, object_id: str) -> bool:
    return AuditLogEntry.objects.filter(action=action, object_id=object_id).exists()


def _authenticates(raw_key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/v1/account").status_code


def test_merchants_and_keys_are_made_by_the_service_and_the_key_works():
    merchant = MerchantFactory()
    assert _audited("merchant.created", merchant.public_id)
    assert not merchant.live_enabled

    key = ApiKeyFactory(merchant=merchant)
    assert key.raw_key.startswith("sk_test_")
    assert key.raw_key not in {str(getattr(key, f.attname)) for f in ApiKey._meta.fields}
    assert _audited("api_key.created", key.public_id)
    assert _authenticates(key.raw_key) == 200

    live = MerchantFactory(live_enabled=True)
    assert live.live_enabled
    assert _authenticates(ApiKeyFactory(merchant=live, livemode=True).raw_key) == 200
    # a live key of a merchant not switched to live mode is refused, as in production
    assert _authenticates(ApiKeyFactory(merchant=merchant, livemode=True).raw_key) == 401


def test_a_seller_keeps_its_bank_account_only_encrypted():
    seller = SellerFactory()
    assert (seller.country, seller.bank_currency, seller.bank_last4) == ("DE", "eur", "3000")
    assert b"370400440532013000" not in bytes(seller.bank_account_encrypted)
    assert _audited("seller.created", seller.public_id)

    american = SellerFactory(merchant=seller.merchant, bank_account=dict(US_BANK))
    assert (american.country, american.bank_currency, american.bank_last4) == ("US", "usd", "6789")


def test_a_connector_is_on_the_simulator_with_its_credentials_sealed(settings):
    settings.SIMULATOR_URL = "http://127.0.0.1:9"
    stripe = ConnectorFactory()
    assert (stripe.connector_type, stripe.endpoint, stripe.livemode) == (
        "stripe",
        "simulator",
        False,
    )
    assert stripe.simulator_account == stripe.public_id  # its own simulated account
    assert connector_services.connector_credentials(stripe) == STRIPE_CREDENTIALS
    assert STRIPE_CREDENTIALS["api_key"].encode() not in bytes(stripe.credentials_encrypted)
    assert connector_services.connector_endpoint_url(stripe) == (
        f"http://127.0.0.1:9/stripe/{stripe.public_id}"
    )
    assert _audited("connector.created", stripe.public_id)

    adyen = ConnectorFactory(adyen=True, merchant=stripe.merchant)
    assert connector_services.connector_credentials(adyen) == ADYEN_CREDENTIALS

    live = ConnectorFactory(adyen=True, livemode=True)
    assert (live.endpoint, live.live_url_prefix) == ("production", ADYEN_LIVE_URL_PREFIX)


def test_a_payment_method_is_a_tokenized_card():
    payment_method = PaymentMethodFactory(number="378282246310005")  # Amex: a 4-digit CVC
    assert (payment_method.brand, payment_method.last4) == ("amex", "0005")
    assert b"378282246310005" not in bytes(payment_method.encrypted_number)
    card = vault_services.vault_card_for_authorization(payment_method=payment_method)
    assert (card.number, card.cvc) == ("378282246310005", "1234")  # the CVC only in Redis
    with pytest.raises(TypeError, match="through the service"):
        PaymentMethodFactory.build()


@pytest.mark.parametrize(
    ("status", "amount_capturable", "amount_received", "attempts"),
    [
        ("requires_payment_method", 0, 0, 0),
        ("requires_confirmation", 0, 0, 0),
        ("canceled", 0, 0, 0),
        ("requires_action", 0, 0, 1),
        ("requires_capture", 2000, 0, 1),
        ("succeeded", 0, 2000, 1),
    ],
)
@pytest.mark.usefixtures("connectors")
def test_an_intent_reaches_each_state_through_the_services(
    merchant, status, amount_capturable, amount_received, attempts
):
    intent = PaymentIntentFactory(merchant=merchant, status=status)
    assert intent.status == status
    assert (intent.amount_capturable, intent.amount_received) == (
        amount_capturable,
        amount_received,
    )
    assert intent.attempts.count() == attempts
    assert (intent.payment_method is None) == (status == "requires_payment_method")
    assert _audited("payment_intent.created", intent.public_id)
    ledger_support.assert_zero_sums()


@pytest.mark.usefixtures("stripe_connector")
def test_a_manual_capture_intent_asked_to_succeed_is_captured(merchant):
    intent = PaymentIntentFactory(merchant=merchant, status="succeeded", capture_method="manual")
    assert (intent.status, intent.amount_received) == ("succeeded", 2000)
    assert JournalTransaction.objects.filter(source_id=intent.public_id, kind="capture").exists()


@pytest.mark.usefixtures("stripe_connector")
def test_an_intent_state_no_service_path_reaches_is_refused(merchant):
    with pytest.raises(ValueError, match="processing"):
        PaymentIntentFactory(merchant=merchant, status="processing")
    # a confirm that ends elsewhere is said, not returned as if it had succeeded
    with pytest.raises(AssertionError, match="is requires_payment_method, not succeeded"):
        PaymentIntentFactory(merchant=merchant, status="succeeded", card_number=HARD_DECLINE_CARD)
    # a merchant without a connector: the confirm's own refusal
    with pytest.raises(InvalidRequestError) as refused:
        PaymentIntentFactory(status="succeeded")
    assert refused.value.code == "no_eligible_connector"


@pytest.mark.parametrize(
    ("outcome", "intent_status", "attempts"),
    [
        ("approved", "succeeded", 1),
        ("requires_action", "requires_action", 1),
        ("hard_decline", "requires_payment_method", 1),
        ("soft_decline", "requires_payment_method", 2),  # failed over to the second connector
    ],
)
@pytest.mark.usefixtures("connectors")
def test_an_attempt_is_the_one_a_confirm_makes(merchant, outcome, intent_status, attempts):
    attempt = PaymentAttemptFactory(merchant=merchant, outcome=outcome)
    assert isinstance(attempt, PaymentAttempt)
    assert attempt.outcome == outcome
    assert attempt.intent.status == intent_status
    assert attempt.sequence == attempts == attempt.intent.attempts.count()


@pytest.mark.usefixtures("stripe_connector")
def test_a_refund_refunds_a_succeeded_intent(merchant):
    refund = RefundFactory(intent__merchant=merchant, amount=500)
    assert (refund.status, refund.amount) == ("succeeded", 500)
    refund.intent.refresh_from_db()
    assert refund.intent.amount_refunded == 500
    whole = RefundFactory(intent=PaymentIntentFactory(merchant=merchant, status="succeeded"))
    assert whole.amount == 2000


def test_a_webhook_endpoint_signs_with_its_shown_secret():
    endpoint = WebhookEndpointFactory()
    assert endpoint.secret.startswith("whsec_")
    assert event_services.endpoint_signing_keys(endpoint, now=timezone.now()) == [
        secret_key_bytes(endpoint.secret)
    ]
    assert endpoint.secret.encode() not in bytes(endpoint.secret_encrypted)
    assert endpoint.enabled_events == ["*"]


def test_a_payout_is_booked_against_a_balance_the_factory_funded():
    payout = PayoutFactory(amount=1500)
    balances = ledger_support.balances(payout.merchant_id)
    assert payout.status == "pending"
    assert (balances[chart.MERCHANT_AVAILABLE], balances[chart.PAYOUTS_IN_TRANSIT]) == (0, 1500)
    assert JournalTransaction.objects.filter(source_id=payout.public_id, kind="payout").exists()

    seller = SellerFactory(merchant=payout.merchant)
    assert PayoutFactory(merchant=payout.merchant, seller=seller).seller == seller
    # unfunded, the service refuses it as it refuses any payout above the balance
    with pytest.raises(InvalidRequestError) as refused:
        PayoutFactory(merchant=payout.merchant, funded=False)
    assert refused.value.code == "insufficient_balance"
    ledger_support.assert_zero_sums()
    ledger_support.assert_accounts_match_entries()


def test_a_journal_is_posted_by_the_ledger():
    journal = JournalTransactionFactory(amount=4200, psp_fee=42)
    assert journal.kind == "capture" and journal.public_id.startswith("txn_")
    balances = ledger_support.balances(journal.merchant_id)
    assert balances[chart.MERCHANT_PENDING] == 4200 - 42
    ledger_support.assert_zero_sums()
    ledger_support.assert_journals_balanced()


def test_routing_profiles_and_settings_go_through_the_routing_services(merchant):
    profile = RoutingProfileFactory(merchant=merchant, activate=True)
    assert profile.is_active and profile.active_version.number == 1
    assert _audited("routing_profile.created", profile.public_id)
    limits = RoutingSettingsFactory(merchant=merchant, max_attempts=1)
    assert (limits.max_attempts, limits.time_budget_seconds) == (1, None)


def test_staff_users_have_their_role_and_serve_their_merchants(client, merchant, other_merchant):
    support = StaffUserFactory(role="support", serves=[merchant])
    assert support.is_staff and not support.is_superuser
    assert list(support.groups.values_list("name", flat=True)) == ["support"]
    assert support.has_perm("merchants.serve_merchant", merchant)
    assert not support.has_perm("merchants.serve_merchant", other_merchant)
    assert client.login(username=support.username, password="pw")
    assert StaffUserFactory(superuser=True).is_superuser
