"""What the vault keeps where: the number encrypted in PostgreSQL, the CVC encrypted in Redis,
and the hand-over to the checkout plane."""

from __future__ import annotations

import base64
import logging

import pytest
import redis
from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.core import crypto
from apps.core.errors import ApiError, NotFoundError
from apps.psp_adapters.contract import CardData
from apps.vault import selectors, services
from apps.vault.models import PaymentMethod
from tests.factories import PaymentMethodFactory
from tests.support.pan_scan import find_pans_in_database, find_pans_in_text
from tests.vault.conftest import VISA, card_payload

AMEX = "378282246310005"
AMEX_CVC = "8317"

KEY_OLD = base64.b64encode(b"o" * 32).decode()
KEY_NEW = base64.b64encode(b"n" * 32).decode()


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def _row(public_id: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM vault_paymentmethod WHERE public_id = %s", [public_id])
        names = [column.name for column in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def _pm(tokenized: dict) -> PaymentMethod:
    return PaymentMethod.objects.get(public_id=tokenized["id"])


def _create(merchant, number=VISA, cvc="123", livemode=False) -> PaymentMethod:
    return PaymentMethodFactory(
        merchant=merchant,
        livemode=livemode,
        number=number,
        cvc=cvc,
        billing_name="Jenny Rosen",
        billing_email="",
    )


# --------------------------------------------------------------------------- the number


def test_number_is_not_in_any_column_of_the_row_in_clear(tokenize):
    created = tokenize()

    row = _row(created["id"])

    assert set(row) >= {"encrypted_number", "encryption_key_id", "bin", "last4"}
    for column, value in row.items():
        if isinstance(value, (bytes, memoryview)):
            assert VISA.encode() not in bytes(value), column
        else:
            assert VISA not in str(value), column
    assert row["bin"] == "424242" and row["last4"] == "4242"


def test_ciphertext_decrypts_only_with_its_own_public_id(merchant):
    first, second = _create(merchant), _create(merchant, "5555555555554444")
    row = _row(first.public_id)
    ciphertext = crypto.Ciphertext(
        key_id=row["encryption_key_id"], blob=bytes(row["encrypted_number"])
    )

    assert row["encryption_key_id"] == settings.DATA_ENCRYPTION_ACTIVE_KEY
    assert crypto.decrypt(ciphertext, associated_data=first.public_id.encode()) == VISA.encode()
    with pytest.raises(InvalidTag):
        crypto.decrypt(ciphertext, associated_data=second.public_id.encode())
    with pytest.raises(InvalidTag):
        crypto.decrypt(ciphertext)


def test_ciphertext_swapped_onto_another_row_does_not_decrypt(merchant, caplog):
    first, second = _create(merchant), _create(merchant, "5555555555554444")
    PaymentMethod.objects.filter(pk=second.pk).update(encrypted_number=first.encrypted_number)
    second.refresh_from_db()

    with caplog.at_level(logging.DEBUG), pytest.raises(ApiError) as raised:
        services.vault_card_for_authorization(payment_method=second)

    assert raised.value.code == "vault_decryption_failed"
    assert find_pans_in_text(str(raised.value) + caplog.text, {VISA}) == []


def test_key_rotation_keeps_old_cards_readable_and_seals_new_ones_with_the_new_key(
    merchant, settings, keyring_reset
):
    settings.DATA_ENCRYPTION_KEYS = f"old:{KEY_OLD}"
    settings.DATA_ENCRYPTION_ACTIVE_KEY = "old"
    crypto.reset_keyring_cache()
    before = _create(merchant)

    settings.DATA_ENCRYPTION_KEYS = f"old:{KEY_OLD},new:{KEY_NEW}"
    settings.DATA_ENCRYPTION_ACTIVE_KEY = "new"
    crypto.reset_keyring_cache()
    after = _create(merchant, "5555555555554444")

    assert before.encryption_key_id == "old"
    assert after.encryption_key_id == "new"
    before.refresh_from_db()
    assert services.vault_card_for_authorization(payment_method=before).number == VISA
    assert services.vault_card_for_authorization(payment_method=after).number == (
        "5555555555554444"
    )
    # the CVC stored under the old key is still readable too
    assert services.vault_card_for_authorization(payment_method=before).cvc == "123"


def test_card_whose_key_left_the_keyring_fails_cleanly(merchant, settings, keyring_reset):
    settings.DATA_ENCRYPTION_KEYS = f"old:{KEY_OLD}"
    settings.DATA_ENCRYPTION_ACTIVE_KEY = "old"
    crypto.reset_keyring_cache()
    payment_method = _create(merchant)
    settings.DATA_ENCRYPTION_KEYS = f"new:{KEY_NEW}"
    settings.DATA_ENCRYPTION_ACTIVE_KEY = "new"
    crypto.reset_keyring_cache()

    with pytest.raises(ApiError) as raised:
        services.vault_card_for_authorization(payment_method=payment_method)
    assert raised.value.code == "vault_decryption_failed"


def test_repr_and_str_show_last4_only(merchant):
    payment_method = _create(merchant)
    for text in (repr(payment_method), str(payment_method)):
        assert "4242" in text
        assert VISA not in text
        assert "424242" not in text  # not even the BIN
    card = services.vault_card_for_authorization(payment_method=payment_method)
    assert VISA not in repr(card)


# --------------------------------------------------------------------------- the CVC


def test_cvc_is_encrypted_in_redis_with_a_ttl(merchant, redis_client):
    payment_method = _create(merchant, AMEX, cvc=AMEX_CVC)

    key = f"vault:cvc:{payment_method.public_id}"
    stored = redis_client.get(key)
    ttl = redis_client.ttl(key)

    assert stored is not None
    assert AMEX_CVC.encode() not in stored
    assert 0 < ttl <= 600
    assert services.vault_card_for_authorization(payment_method=payment_method).cvc == AMEX_CVC


def test_cvc_ttl_follows_the_setting(merchant, redis_client, settings):
    settings.VAULT_CVC_TTL_SECONDS = 30
    payment_method = _create(merchant)
    assert 0 < redis_client.ttl(f"vault:cvc:{payment_method.public_id}") <= 30


def test_cvc_never_reaches_postgresql(merchant):
    payment_method = _create(merchant, AMEX, cvc=AMEX_CVC)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'vault_paymentmethod' AND column_name LIKE %s",
            ["%cvc%"],
        )
        assert [name for (name,) in cursor.fetchall()] == ["cvc_discarded_at"]
    row = _row(payment_method.public_id)
    for column, value in row.items():
        if column in ("public_id", "fingerprint"):  # random: could hold any 4 digits
            continue
        if isinstance(value, (bytes, memoryview)):
            assert AMEX_CVC.encode() not in bytes(value), column
        else:
            assert AMEX_CVC not in str(value), column


def test_discard_deletes_the_cvc_and_records_when(merchant, redis_client):
    payment_method = _create(merchant)

    services.vault_discard_cvc(payment_method=payment_method)

    assert redis_client.exists(f"vault:cvc:{payment_method.public_id}") == 0
    payment_method.refresh_from_db()
    assert payment_method.cvc_discarded_at is not None
    card = services.vault_card_for_authorization(payment_method=payment_method)
    assert card == CardData(
        number=VISA, exp_month=12, exp_year=2034, cvc=None, holder_name="Jenny Rosen"
    )
    services.vault_discard_cvc(payment_method=payment_method)  # idempotent


def _in_one_pipeline(queue, redis_client, *others):
    """Runs `queue` (a vault part of another module's round trip) in one pipeline with other
    commands, as the breaker or the velocity counters do."""
    pipe = redis_client.pipeline(transaction=False)
    for key in others:
        pipe.get(key)
    start = len(pipe)
    take = queue(pipe)
    take(pipe.execute(raise_on_error=False)[start:])


def test_the_confirms_hand_over_reads_the_cvc_in_another_modules_round_trip(merchant, redis_client):
    payment_method = _create(merchant)
    hand_over = services.vault_card_hand_over(payment_method=payment_method)
    assert (hand_over.card.number, hand_over.card.cvc) == (VISA, None)  # not read yet
    assert VISA not in repr(hand_over)

    _in_one_pipeline(hand_over.cvc_read_on, redis_client, "psp-breaker:x:state")
    assert hand_over.card == services.vault_card_for_authorization(payment_method=payment_method)
    assert hand_over.card.cvc == "123"

    # read once per confirm: a failover's attempt queues nothing and keeps the CVC
    pipe = redis_client.pipeline(transaction=False)
    hand_over.cvc_read_on(pipe)([])
    assert len(pipe) == 0 and hand_over.card.cvc == "123"


def test_the_hand_over_reads_on_its_own_when_the_shared_round_trip_fails(merchant):
    payment_method = _create(merchant)
    hand_over = services.vault_card_hand_over(payment_method=payment_method)
    take = hand_over.cvc_read_on(redis.Redis().pipeline())
    take(redis.ConnectionError("the breaker's round trip failed"))
    assert hand_over.card.cvc == "123"  # read as vault_card_for_authorization reads it

    payment_method.cvc_discarded_at = timezone.now()
    discarded = services.vault_card_hand_over(payment_method=payment_method)
    pipe = redis.Redis().pipeline()
    discarded.cvc_read_on(pipe)(redis.ConnectionError("down"))
    assert len(pipe) == 0 and discarded.card.cvc is None  # never read once discarded


def test_the_discard_in_another_modules_round_trip_deletes_and_records(merchant, redis_client):
    payment_method = _create(merchant)
    _in_one_pipeline(
        lambda pipe: services.vault_discard_cvc_on(pipe, payment_method=payment_method),
        redis_client,
        "risk:gen:platform",
    )
    assert redis_client.exists(f"vault:cvc:{payment_method.public_id}") == 0
    payment_method.refresh_from_db()
    assert payment_method.cvc_discarded_at is not None

    # that round trip failed: the vault deletes on its own, and records the discard anyway
    other = _create(merchant)
    take = services.vault_discard_cvc_on(redis.Redis().pipeline(), payment_method=other)
    take(redis.ConnectionError("down"))
    assert redis_client.exists(f"vault:cvc:{other.public_id}") == 0
    other.refresh_from_db()
    assert other.cvc_discarded_at is not None


def test_card_without_cvc_is_handed_over_without_one(merchant, redis_client):
    payment_method = _create(merchant, cvc=None)
    assert redis_client.keys("vault:cvc:*") == []
    assert services.vault_card_for_authorization(payment_method=payment_method).cvc is None


def test_expired_cvc_is_handed_over_as_none(merchant, redis_client):
    payment_method = _create(merchant)
    redis_client.delete(f"vault:cvc:{payment_method.public_id}")  # as the TTL would
    card = services.vault_card_for_authorization(payment_method=payment_method)
    assert (card.number, card.cvc) == (VISA, None)


def test_cvc_under_another_payment_methods_key_does_not_decrypt(merchant, redis_client):
    first, second = _create(merchant, cvc="111"), _create(merchant, cvc="222")
    redis_client.set(
        f"vault:cvc:{second.public_id}", redis_client.get(f"vault:cvc:{first.public_id}")
    )
    assert services.vault_card_for_authorization(payment_method=second).cvc is None


def test_failed_tokenization_leaves_no_cvc_in_redis(api, redis_client):
    response = api.post("/v1/payment_methods", card_payload(exp_month=13), format="json")
    assert response.status_code == 400
    assert redis_client.keys("vault:cvc:*") == []


def test_redis_failure_while_storing_the_cvc_writes_nothing(merchant, monkeypatch):
    def unavailable(*args, **kwargs):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(redis.Redis, "set", unavailable)
    with pytest.raises(ApiError) as raised:
        _create(merchant)
    assert (raised.value.code, raised.value.http_status) == ("vault_unavailable", 503)
    assert PaymentMethod.objects.count() == 0


# --------------------------------------------------------------------------- checkout plane


def test_get_for_charge_is_scoped_to_merchant_and_mode(merchant, other_merchant):
    payment_method = _create(merchant)

    found = selectors.payment_method_get_for_charge(
        merchant_id=merchant.id, livemode=False, public_id=payment_method.public_id
    )
    assert found.pk == payment_method.pk
    for merchant_id, livemode in ((other_merchant.id, False), (merchant.id, True)):
        with pytest.raises(NotFoundError) as raised:
            selectors.payment_method_get_for_charge(
                merchant_id=merchant_id, livemode=livemode, public_id=payment_method.public_id
            )
        assert (raised.value.code, raised.value.param) == ("resource_missing", "payment_method")
        assert raised.value.http_status == 404


def test_card_routing_facts(merchant):
    payment_method = _create(merchant, "4000002500000003")
    assert selectors.card_routing_facts(payment_method) == {
        "brand": "visa",
        "funding": "credit",
        "bin": "400000",
        "issuer_country": "FR",
        "last4": "0003",
    }


# --------------------------------------------------------------------------- whole-database scan


def test_no_card_number_anywhere_in_the_database_logs_or_redis(api, pk_api, caplog, redis_client):
    pans = {VISA, AMEX, "5555555555554444", "6011111111111117"}
    with caplog.at_level(logging.DEBUG):
        bodies = [
            api.post("/v1/payment_methods", card_payload(VISA), format="json",
                     HTTP_IDEMPOTENCY_KEY="scan-1"),
            pk_api.post("/v1/payment_methods", card_payload("5555 5555 5555 4444"),
                        format="json"),
            api.post("/v1/payment_methods", card_payload(AMEX, cvc=AMEX_CVC), format="json",
                     HTTP_IDEMPOTENCY_KEY="scan-2"),
            api.post("/v1/payment_methods", card_payload("6011-1111-1111-1117"), format="json"),
            api.post("/v1/payment_methods", card_payload(VISA, exp_month=13), format="json"),
        ]  # fmt: skip
        for payment_method in PaymentMethod.objects.all():
            services.vault_card_for_authorization(payment_method=payment_method)
            services.vault_discard_cvc(payment_method=payment_method)

    assert [b.status_code for b in bodies] == [201, 201, 201, 201, 400]
    assert PaymentMethod.objects.count() == 4
    assert find_pans_in_database(pans) == []
    assert find_pans_in_text(caplog.text, pans) == []
    assert find_pans_in_text("".join(b.content.decode() for b in bodies), pans) == []
    for key in redis_client.scan_iter():
        value = redis_client.get(key) if redis_client.type(key) == b"string" else b""
        assert find_pans_in_text(value.decode("latin-1"), pans) == [], key


def test_pan_scanner_finds_a_number_stored_in_clear(merchant):
    """The scanner itself must be able to fail."""
    _create(merchant)
    PaymentMethod.objects.update(billing_name="card 4242 4242 4242 4242")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE vault_paymentmethod SET encrypted_number = %s", [b"\x00\xff" + VISA.encode()]
        )

    assert find_pans_in_database({VISA}) == [
        "vault_paymentmethod.billing_name",
        "vault_paymentmethod.encrypted_number",
    ]
    assert find_pans_in_text("x4242-4242-4242-4242y", {VISA, AMEX}) == [VISA]
