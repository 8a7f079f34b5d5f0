from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.audit import Actor, audit_record, diff
from apps.core.crypto import encrypt, keyed_fingerprint
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.ids import new_public_id
from apps.core.money import normalize_currency
from apps.merchants.domain import (
    BANK_AAD_PREFIX,
    BankAccountDetails,
    hash_api_key,
    key_prefix,
)
from apps.merchants.models import ApiKey, Merchant, Seller

KEY_RANDOM_BYTES = 24  # 32 url-safe characters: ~192 bits
MAX_ROLL_GRACE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str  # shown once, to the caller that created it


def _new_raw_key(kind: str, livemode: bool) -> str:
    body = secrets.token_urlsafe(KEY_RANDOM_BYTES).replace("-", "x").replace("_", "y")
    return key_prefix(kind, livemode) + body


def merchant_create(*, name: str, email: str = "", country: str = "", actor: Actor) -> Merchant:
    with transaction.atomic():
        merchant = Merchant.objects.create(name=name, email=email, country=country)
        audit_record(
            actor=actor,
            action="merchant.created",
            object_type="merchant",
            object_id=merchant.public_id,
            merchant_id=merchant.id,
            changes={"name": [None, name]},
        )
    return merchant


_UPDATABLE = ("name", "email", "country", "metadata")


def merchant_update(*, merchant: Merchant, actor: Actor, **changes) -> Merchant:
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise InvalidRequestError(
            f"Unknown field {sorted(unknown)[0]!r}.",
            code="parameter_unknown",
            param=sorted(unknown)[0],
        )
    with transaction.atomic():
        merchant = Merchant.objects.select_for_update(of=("self",)).get(pk=merchant.pk)
        before = {f: getattr(merchant, f) for f in _UPDATABLE}
        if "metadata" in changes:
            # Stripe semantics: keys are merged; an empty-string value removes the key
            merged = dict(merchant.metadata)
            for k, v in changes.pop("metadata").items():
                if v == "":
                    merged.pop(k, None)
                else:
                    merged[k] = v
            merchant.metadata = merged
        for field, value in changes.items():
            setattr(merchant, field, value)
        merchant.save()
        after = {f: getattr(merchant, f) for f in _UPDATABLE}
        audit_record(
            actor=actor,
            action="merchant.updated",
            object_type="merchant",
            object_id=merchant.public_id,
            merchant_id=merchant.id,
            changes=diff(before, after),
        )
    return merchant


def api_key_create(
    *, merchant: Merchant, kind: str, livemode: bool, actor: Actor, name: str = ""
) -> IssuedKey:
    if kind not in ApiKey.Kind.values:
        raise InvalidRequestError(
            "type must be 'secret' or 'publishable'.", code="parameter_invalid", param="type"
        )
    raw = _new_raw_key(kind, livemode)
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            merchant=merchant,
            kind=kind,
            livemode=livemode,
            key_hash=hash_api_key(raw),
            display=f"{raw[:12]}…{raw[-4:]}",
            name=name,
        )
        audit_record(
            actor=actor,
            action="api_key.created",
            object_type="api_key",
            object_id=api_key.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"display": [None, api_key.display], "kind": [None, kind]},
        )
    return IssuedKey(api_key=api_key, raw_key=raw)


def api_key_roll(*, api_key: ApiKey, grace_seconds: int, actor: Actor) -> IssuedKey:
    """Issues a replacement key; the old one keeps working for `grace_seconds` (0 = now)."""
    if (
        isinstance(grace_seconds, bool)
        or not isinstance(grace_seconds, int)
        or not (0 <= grace_seconds <= MAX_ROLL_GRACE_SECONDS)
    ):
        raise InvalidRequestError(
            f"expires_in must be an integer number of seconds from 0 to {MAX_ROLL_GRACE_SECONDS}.",
            code="parameter_invalid",
            param="expires_in",
        )
    with transaction.atomic():
        old = ApiKey.objects.select_for_update(of=("self",)).get(pk=api_key.pk)
        if old.revoked_at or old.rolled_to_id:
            raise ConflictError("This key was already revoked or rolled.", code="api_key_inactive")
        issued = api_key_create(
            merchant=old.merchant, kind=old.kind, livemode=old.livemode, actor=actor, name=old.name
        )
        old.rolled_to = issued.api_key
        old.expires_at = timezone.now() + timedelta(seconds=grace_seconds)
        old.save(update_fields=["rolled_to", "expires_at"])
        audit_record(
            actor=actor,
            action="api_key.rolled",
            object_type="api_key",
            object_id=old.public_id,
            merchant_id=old.merchant_id,
            livemode=old.livemode,
            changes={
                "expires_at": [None, old.expires_at.isoformat()],
                "rolled_to": [None, issued.api_key.public_id],
            },
        )
    return issued


def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    with transaction.atomic():
        key = ApiKey.objects.select_for_update(of=("self",)).get(pk=api_key.pk)
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_record(
                actor=actor,
                action="api_key.revoked",
                object_type="api_key",
                object_id=key.public_id,
                merchant_id=key.merchant_id,
                livemode=key.livemode,
                changes={"revoked_at": [None, key.revoked_at.isoformat()]},
            )
    return key


# --------------------------------------------------------------------------- sellers

# Countries whose domestic accounts are identified by IBAN only (SEPA without the UK).
_IBAN_ONLY = (
    "AT BE BG CH CY CZ DE DK EE ES FI FR GR HR HU IE IS IT LI LT LU LV MT NL NO PL PT RO SE SI SK"
)
IBAN_ONLY_COUNTRIES = frozenset(_IBAN_ONLY.split())
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
_DIGITS = re.compile(r"^[0-9]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _bank_error(message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(message, code="bank_account_invalid", param=f"bank_account[{field}]")


def _iban_valid(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def _aba_valid(routing: str) -> bool:
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(routing, weights, strict=True)) % 10 == 0


def bank_account_validate(
    *,
    country: str,
    currency: str,
    account_holder_name: str,
    account_number: str,
    routing_number: str = "",
) -> BankAccountDetails:
    """Normalizes and checks payout bank details: an IBAN (checksum, country) where the country
    uses IBANs, else domestic numbers (US: ABA routing number with its checksum; GB: sort code).
    Every failure is a 400 `bank_account_invalid` naming the field."""
    country = (country or "").strip().upper()
    if not _COUNTRY.match(country):
        raise _bank_error("country must be a two-letter ISO 3166 code such as 'DE'.", "country")
    currency = normalize_currency(currency, param="bank_account[currency]")
    holder = (account_holder_name or "").strip()
    if not holder or len(holder) > 200:
        raise _bank_error("account_holder_name must be 1 to 200 characters.", "account_holder_name")
    number = re.sub(r"[\s-]", "", account_number or "").upper()
    routing = re.sub(r"[\s-]", "", routing_number or "")
    if number[:2].isalpha():
        if not _IBAN.match(number) or not _iban_valid(number):
            raise _bank_error("This IBAN is not valid (format or check digits).", "account_number")
        if number[:2] != country:
            raise _bank_error(
                f"The IBAN is for {number[:2]}, but the bank account country is {country}.",
                "account_number",
            )
        if routing:
            raise _bank_error("An IBAN needs no routing_number.", "routing_number")
    else:
        if country in IBAN_ONLY_COUNTRIES:
            raise _bank_error(f"Bank accounts in {country} need an IBAN.", "account_number")
        if not _DIGITS.match(number) or not 4 <= len(number) <= 17:
            raise _bank_error("account_number must be 4 to 17 digits.", "account_number")
        if country == "US":
            if not (_DIGITS.match(routing) and len(routing) == 9 and _aba_valid(routing)):
                raise _bank_error(
                    "US accounts need a valid 9-digit ABA routing_number.", "routing_number"
                )
        elif country == "GB":
            if not (_DIGITS.match(routing) and len(routing) == 6):
                raise _bank_error(
                    "GB accounts need a 6-digit sort code as routing_number.", "routing_number"
                )
            if len(number) != 8:
                raise _bank_error("GB account numbers have 8 digits.", "account_number")
        elif routing and not (_DIGITS.match(routing) and 3 <= len(routing) <= 12):
            raise _bank_error("routing_number must be 3 to 12 digits.", "routing_number")
    return BankAccountDetails(
        country=country,
        currency=currency,
        account_holder_name=holder,
        account_number=number,
        routing_number=routing,
    )


def _payout_schedule(schedule: dict | None) -> tuple[str, str]:
    schedule = dict(schedule or {})
    interval = schedule.pop("interval", Seller.PayoutInterval.DAILY)
    anchor = schedule.pop("weekly_anchor", None)
    if schedule:
        field = sorted(schedule)[0]
        raise InvalidRequestError(
            f"Unknown parameter {field!r}.",
            code="parameter_unknown",
            param=f"payout_schedule[{field}]",
        )
    if interval not in Seller.PayoutInterval.values:
        raise InvalidRequestError(
            "interval must be one of daily, weekly, manual.",
            code="parameter_invalid",
            param="payout_schedule[interval]",
        )
    if anchor is not None and interval != Seller.PayoutInterval.WEEKLY:
        raise InvalidRequestError(
            "weekly_anchor is only allowed with interval=weekly.",
            code="parameter_invalid",
            param="payout_schedule[weekly_anchor]",
        )
    if anchor is not None and anchor not in Seller.Weekday.values:
        raise InvalidRequestError(
            "weekly_anchor must be a weekday name such as 'monday'.",
            code="parameter_invalid",
            param="payout_schedule[weekly_anchor]",
        )
    return interval, anchor or Seller.Weekday.MONDAY


def seller_create(
    *,
    merchant: Merchant,
    livemode: bool,
    name: str,
    country: str,
    bank_account: dict,
    actor: Actor,
    email: str = "",
    payout_schedule: dict | None = None,
    metadata: dict | None = None,
) -> Seller:
    """Creates a connected account. The bank account number is encrypted with the seller's
    public id as associated data (a ciphertext cannot be moved to another seller)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidRequestError(
            "name must be 1 to 200 characters.", code="parameter_invalid", param="name"
        )
    country = (country or "").strip().upper()
    if not _COUNTRY.match(country):
        raise InvalidRequestError(
            "country must be a two-letter ISO 3166 code such as 'DE'.",
            code="parameter_invalid",
            param="country",
        )
    interval, anchor = _payout_schedule(payout_schedule)
    if not isinstance(bank_account, dict):
        raise _bank_error("bank_account must be an object.", "account_number")
    unknown = sorted(
        set(bank_account)
        - {"country", "currency", "account_holder_name", "account_number", "routing_number"}
    )
    if unknown:
        raise InvalidRequestError(
            f"Unknown parameter {unknown[0]!r}.",
            code="parameter_unknown",
            param=f"bank_account[{unknown[0]}]",
        )
    details = bank_account_validate(
        country=bank_account.get("country") or country,
        currency=bank_account.get("currency", ""),
        account_holder_name=bank_account.get("account_holder_name") or name,
        account_number=bank_account.get("account_number", ""),
        routing_number=bank_account.get("routing_number", ""),
    )
    public_id = new_public_id("sel")
    sealed = encrypt(
        json.dumps(
            {"account_number": details.account_number, "routing_number": details.routing_number}
        ).encode(),
        associated_data=(BANK_AAD_PREFIX + public_id).encode(),
    )
    fingerprint = keyed_fingerprint(
        f"{details.country}:{details.routing_number}:{details.account_number}",
        purpose="bank_account",
    )
    with transaction.atomic():
        seller = Seller.objects.create(
            public_id=public_id,
            merchant=merchant,
            livemode=livemode,
            name=name.strip(),
            email=email or "",
            country=country,
            metadata=metadata or {},
            payout_interval=interval,
            payout_weekly_anchor=anchor,
            bank_fingerprint=fingerprint,
            bank_last4=details.account_number[-4:],
            bank_country=details.country,
            bank_currency=details.currency,
            bank_account_holder_name=details.account_holder_name,
            bank_account_encrypted=sealed.blob,
            bank_account_key_id=sealed.key_id,
        )
        audit_record(
            actor=actor,
            action="seller.created",
            object_type="seller",
            object_id=seller.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={
                "name": [None, seller.name],
                "payout_interval": [None, interval],
                "bank_last4": [None, seller.bank_last4],
            },
        )
    return seller
