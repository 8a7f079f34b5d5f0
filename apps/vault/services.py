"""Card tokenization and hand-over to the checkout plane.

This module is the only place a full card number exists in clear, and only for the duration of
one call: it is encrypted before it touches PostgreSQL (AES-256-GCM, associated data = the
payment method's public id, so a ciphertext copied onto another row does not decrypt), and it is
never logged, put in an exception, a repr or an audit row (last4 and brand only).

The CVC never reaches PostgreSQL: it is encrypted with the same keyring and kept in Redis under
`vault:cvc:<pm id>` for `VAULT_CVC_TTL_SECONDS` (default 600), and deleted after the first
authorization (`vault_discard_cvc`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import redis
from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core import crypto
from apps.core.audit import Actor, audit_record
from apps.core.errors import ApiError, InvalidRequestError, ServiceUnavailableError
from apps.core.ids import new_public_id
from apps.core.redis_client import checkout_redis
from apps.psp_adapters.contract import CardData
from apps.vault import cards
from apps.vault.models import PaymentMethod

if TYPE_CHECKING:
    from apps.merchants.models import Merchant

logger = logging.getLogger(__name__)

DEFAULT_CVC_TTL_SECONDS = 600
MAX_YEARS_AHEAD = 50
CVC_KEY_PREFIX = "vault:cvc:"


# --------------------------------------------------------------------------- keys and storage


def cvc_ttl_seconds() -> int:
    return int(getattr(settings, "VAULT_CVC_TTL_SECONDS", DEFAULT_CVC_TTL_SECONDS))


def cvc_redis_key(public_id: str) -> str:
    return f"{CVC_KEY_PREFIX}{public_id}"


def number_associated_data(public_id: str) -> bytes:
    return public_id.encode()


def cvc_associated_data(public_id: str) -> bytes:
    # distinct from the number's, so the two ciphertexts of one card cannot stand in for each other
    return f"cvc:{public_id}".encode()


def _redis() -> redis.Redis:
    return checkout_redis(timeout=1)


def _seal_cvc(public_id: str, cvc: str) -> bytes:
    sealed = crypto.encrypt(cvc.encode(), associated_data=cvc_associated_data(public_id))
    return sealed.key_id.encode() + b":" + sealed.blob  # key ids never contain ":"


def _open_cvc(public_id: str, value: bytes) -> str:
    key_id, _, blob = value.partition(b":")
    ciphertext = crypto.Ciphertext(key_id=key_id.decode(), blob=blob)
    return crypto.decrypt(ciphertext, associated_data=cvc_associated_data(public_id)).decode()


def _cvc_store(public_id: str, cvc: str) -> None:
    try:
        _redis().set(cvc_redis_key(public_id), _seal_cvc(public_id, cvc), ex=cvc_ttl_seconds())
    except redis.RedisError:
        logger.error("vault: could not store the CVC of %s (Redis unavailable)", public_id)
        raise ServiceUnavailableError(
            "The card vault is temporarily unavailable. Retry shortly.", code="vault_unavailable"
        ) from None


def _cvc_fetch(public_id: str) -> str | None:
    try:
        value = _redis().get(cvc_redis_key(public_id))
    except redis.RedisError:
        logger.warning("vault: CVC of %s unreadable (Redis unavailable); going without", public_id)
        return None
    return _cvc_from(public_id, value)


def _cvc_from(public_id: str, value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return _open_cvc(public_id, value)
    except (InvalidTag, KeyError, UnicodeDecodeError):
        logger.warning("vault: CVC of %s does not decrypt; going without", public_id)
        return None


def _cvc_forget(public_id: str) -> None:
    try:
        _redis().delete(cvc_redis_key(public_id))
    except redis.RedisError:
        # cvc_discarded_at still stops any later use, and the TTL removes it from Redis
        logger.warning("vault: could not delete the CVC of %s (Redis unavailable)", public_id)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _ValidCard:
    number: str
    brand: str
    exp_month: int
    exp_year: int
    cvc: str | None

    def __repr__(self) -> str:  # keep the number out of tracebacks
        return f"_ValidCard(brand={self.brand}, last4={self.number[-4:]})"


def _card_error(code: str, message: str, param: str) -> InvalidRequestError:
    # invalid_request_error (400), not card_error (402): the card was never sent to an issuer,
    # the input is wrong; 402 stays reserved for declines, and a 400 releases the
    # Idempotency-Key so the corrected request can reuse it
    return InvalidRequestError(message, code=code, param=param)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 4:
        return int(value.strip())
    return None


def _validate_card(
    *, number: object, exp_month: object, exp_year: object, cvc: object
) -> _ValidCard:
    # number: digits (spaces and dashes allowed), a length its brand uses, then Luhn
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not isinstance(number, str):
        raise _card_error("invalid_number", "The card number must be a string.", "card[number]")
    digits = cards.normalize_number(number.strip())
    if (
        not digits.isascii()
        or not digits.isdigit()
        or not cards.MIN_LENGTH <= len(digits) <= cards.MAX_LENGTH
    ):
        raise _card_error(
            "invalid_number", "The card number is not a valid card number.", "card[number]"
        )
    brand = cards.detect_brand(digits)
    if not cards.length_valid(digits, brand):
        raise _card_error(
            "invalid_number",
            f"The card number does not have a valid length for a {brand} card.",
            "card[number]",
        )
    if not cards.luhn_valid(digits):
        raise _card_error("incorrect_number", "Your card number is incorrect.", "card[number]")

    month = _as_int(exp_month)
    if month is None or not 1 <= month <= 12:
        raise _card_error(
            "invalid_expiry_month",
            "Your card's expiration month is invalid: use 1 to 12.",
            "card[exp_month]",
        )
    year = _as_int(exp_year)
    if year is not None and 0 <= year <= 99:
        year += 2000  # two-digit years, as printed on the card
    today = timezone.now().date()
    if year is None or not 1000 <= year <= today.year + MAX_YEARS_AHEAD:
        raise _card_error(
            "invalid_expiry_year",
            "Your card's expiration year is invalid: use a 4-digit year.",
            "card[exp_year]",
        )
    # a card is valid through the last day of its expiry month
    if (year, month) < (today.year, today.month):
        raise _card_error(
            "expired_card",
            "Your card has expired.",
            "card[exp_year]" if year < today.year else "card[exp_month]",
        )

    if isinstance(cvc, int) and not isinstance(cvc, bool):
        cvc = str(cvc)
    if cvc in (None, ""):
        cvc = None
    else:
        expected = cards.cvc_length(brand)
        if not isinstance(cvc, str) or not (
            cvc.isascii() and cvc.isdigit() and len(cvc) == expected
        ):
            raise _card_error(
                "invalid_cvc",
                f"Your card's security code is invalid: a {brand} card has {expected} digits.",
                "card[cvc]",
            )
    return _ValidCard(number=digits, brand=brand, exp_month=month, exp_year=year, cvc=cvc)


# --------------------------------------------------------------------------- services


def payment_method_create(
    *,
    merchant: Merchant,
    livemode: bool,
    number: str,
    exp_month: int | str,
    exp_year: int | str,
    cvc: str | None = None,
    billing_name: str = "",
    billing_email: str = "",
    actor: Actor,
) -> PaymentMethod:
    """Tokenizes a card. Validation failures raise `InvalidRequestError` naming `card[…]` and
    write nothing."""
    card = _validate_card(number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc)
    public_id = new_public_id("pm")
    sealed = crypto.encrypt(card.number.encode(), associated_data=number_associated_data(public_id))
    facts = cards.bin_facts(card.number)
    payment_method = PaymentMethod(
        public_id=public_id,
        merchant_id=merchant.id,
        livemode=livemode,
        type=PaymentMethod.Type.CARD,
        brand=card.brand,
        bin=card.number[: cards.BIN_LENGTH],
        last4=card.number[-4:],
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        funding=facts.funding,
        issuer_country=facts.issuer_country,
        fingerprint=crypto.keyed_fingerprint(card.number, purpose="card"),
        encrypted_number=sealed.blob,
        encryption_key_id=sealed.key_id,
        billing_name=billing_name,
        billing_email=billing_email,
    )
    try:
        with transaction.atomic():
            payment_method.save()
            audit_record(
                actor=actor,
                action="payment_method.created",
                object_type="payment_method",
                object_id=public_id,
                merchant_id=merchant.id,
                livemode=livemode,
                changes={"brand": [None, card.brand], "last4": [None, card.number[-4:]]},
            )
            # last, so a Redis failure rolls the row back; a failed commit removes it again below
            if card.cvc is not None:
                _cvc_store(public_id, card.cvc)
    except Exception:
        if card.cvc is not None:
            _cvc_forget(public_id)
        raise
    logger.info("vault: tokenized %s (%s, last4 %s)", public_id, card.brand, payment_method.last4)
    return payment_method


def vault_card_for_authorization(*, payment_method: PaymentMethod) -> CardData:
    """The card in clear for one PSP call: the decrypted number, and the CVC while Redis still
    holds it (None once discarded or expired). Never store or log the result."""
    card = _card_without_cvc(payment_method)
    if payment_method.cvc_discarded_at is None:
        card = replace(card, cvc=_cvc_fetch(payment_method.public_id))
    return card


class CardHandOver:
    """The card in clear for one confirm's PSP calls (never store or log it): the number
    decrypted at once, the CVC read from Redis in the round trip that checks the first PSP
    call's circuit breaker (`cvc_read_on`, the connector gateway's `preread`), then kept for
    the confirm's later attempts. `card` has no CVC until then."""

    def __init__(self, payment_method: PaymentMethod, card: CardData):
        self.card = card
        self._public_id = payment_method.public_id
        self._cvc_due = payment_method.cvc_discarded_at is None

    def __repr__(self) -> str:
        return f"CardHandOver({self.card!r})"

    def cvc_read_on(self, pipe: redis.client.Pipeline) -> Callable[[list | Exception], None]:
        """Queues the CVC's read on `pipe`; the returned function takes its reply, or the
        RedisError of a failed round trip (then the CVC is read on its own, as
        `vault_card_for_authorization` does, and goes without if Redis does not answer)."""
        if not self._cvc_due:
            return lambda replies: None
        public_id = self._public_id
        pipe.get(cvc_redis_key(public_id))

        def take(replies: list | Exception) -> None:
            self._cvc_due = False
            if isinstance(replies, Exception):
                cvc = _cvc_fetch(public_id)
            elif isinstance(replies[0], Exception):
                logger.warning(
                    "vault: CVC of %s unreadable (%s); going without",
                    public_id,
                    type(replies[0]).__name__,
                )
                cvc = None
            else:
                cvc = _cvc_from(public_id, replies[0])
            self.card = replace(self.card, cvc=cvc)

        return take


def vault_card_hand_over(*, payment_method: PaymentMethod) -> CardHandOver:
    """`vault_card_for_authorization` for the confirm path: its CVC read shares the round trip
    of the first authorization's circuit-breaker check (`CardHandOver`)."""
    return CardHandOver(payment_method, _card_without_cvc(payment_method))


def _card_without_cvc(payment_method: PaymentMethod) -> CardData:
    ciphertext = crypto.Ciphertext(
        key_id=payment_method.encryption_key_id, blob=bytes(payment_method.encrypted_number)
    )
    try:
        number = crypto.decrypt(
            ciphertext, associated_data=number_associated_data(payment_method.public_id)
        ).decode()
    except (InvalidTag, KeyError):
        logger.error(
            "vault: card of %s does not decrypt (key id %s)",
            payment_method.public_id,
            payment_method.encryption_key_id,
        )
        raise ApiError(
            "The stored card could not be read. Quote the request id to support.",
            code="vault_decryption_failed",
        ) from None
    return CardData(
        number=number,
        exp_month=payment_method.exp_month,
        exp_year=payment_method.exp_year,
        holder_name=payment_method.billing_name or None,
    )


def vault_discard_cvc(*, payment_method: PaymentMethod) -> None:
    """Deletes the CVC after its first authorization (whatever the outcome). Idempotent."""
    _cvc_forget(payment_method.public_id)
    _cvc_discarded(payment_method)


def vault_discard_cvc_statement(
    *, payment_method: PaymentMethod, when: str
) -> tuple[str, list] | None:
    """`vault_discard_cvc`'s record (cvc_discarded_at) as (sql, params), for a caller that
    writes it inside its own single statement, as a data-modifying CTE written only if the
    relation `when` yields a row; None when it is recorded already. Once that statement wrote
    it, the caller calls `vault_discard_cvc_recorded` (the Redis copy)."""
    if payment_method.cvc_discarded_at is not None:
        return None
    table = PaymentMethod._meta.db_table
    sql = (
        f"UPDATE {table} SET cvc_discarded_at = %s"
        f" WHERE id = %s AND cvc_discarded_at IS NULL AND EXISTS (SELECT FROM {when})"
    )
    return sql, [timezone.now(), payment_method.pk]


def vault_discard_cvc_recorded(*, payment_method: PaymentMethod, at) -> None:
    """After a caller's statement recorded the discard (`vault_discard_cvc_statement`): the
    CVC's copy in Redis goes."""
    _cvc_forget(payment_method.public_id)
    if payment_method.cvc_discarded_at is None:
        payment_method.cvc_discarded_at = at


def vault_discard_cvc_on(
    pipe: redis.client.Pipeline, *, payment_method: PaymentMethod
) -> Callable[[list | Exception], None]:
    """`vault_discard_cvc` in another module's round trip (apps.core.redis_client.Queued): the
    DEL queued on `pipe`; the returned function takes its reply, or the RedisError of a failed
    round trip (then it deletes on its own, as `vault_discard_cvc` does), and records the
    discard."""
    public_id = payment_method.public_id
    pipe.delete(cvc_redis_key(public_id))

    def take(replies: list | Exception) -> None:
        if isinstance(replies, Exception):
            _cvc_forget(public_id)
        elif isinstance(replies[0], Exception):
            logger.warning(
                "vault: could not delete the CVC of %s (%s)", public_id, type(replies[0]).__name__
            )
        _cvc_discarded(payment_method)

    return take


def _cvc_discarded(payment_method: PaymentMethod) -> None:
    if payment_method.cvc_discarded_at is None:
        now = timezone.now()
        PaymentMethod.objects.filter(pk=payment_method.pk, cvc_discarded_at__isnull=True).update(
            cvc_discarded_at=now
        )
        payment_method.cvc_discarded_at = now
