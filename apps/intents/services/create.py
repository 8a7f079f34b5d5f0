"""Creating a payment intent: amounts, currency, return URL, marketplace splits validated
before anything is written."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.db import transaction

from apps.core.audit import Actor, audit_entry, audit_record_all
from apps.core.errors import InvalidRequestError
from apps.core.ids import new_public_id
from apps.core.money import normalize_currency, validate_amount
from apps.events.services import outbox_record_new_object
from apps.intents.models import PaymentIntent
from apps.intents.representations import intent_representation
from apps.merchants import selectors as merchant_selectors
from apps.risk import services as risk_services
from apps.vault import selectors as vault_selectors

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def intent_create(*, actor: Actor, **fields) -> PaymentIntent:
    """A payment intent, validated (`intent_prepare`), then written with its outbox and audit
    rows. `fields`: as `intent_prepare` takes them."""
    intent = intent_prepare(**fields)
    with transaction.atomic():
        intent_insert(intent, actor=actor)
    return intent


def intent_prepare(
    *,
    merchant,
    livemode: bool,
    amount,
    currency,
    capture_method: str = "automatic",
    payment_method: str | None = None,
    order_id: str = "",
    customer_email: str = "",
    description: str = "",
    metadata: dict | None = None,
    splits: list[dict] | None = None,
    platform_fee_amount: int = 0,
    return_url: str = "",
    payment_method_options: dict | None = None,
) -> PaymentIntent:
    """The intent validated and built in memory, not saved: nothing is written until a
    transaction inserts it (`intent_insert`)."""
    currency = normalize_currency(currency)
    amount = validate_amount(amount)
    _validate_return_url(return_url, livemode=livemode)
    # SCA: request_three_d_secure and an exemption the merchant claims (apps/risk/sca.py)
    options = (
        risk_services.sca_options_validate(
            amount=amount, currency=currency, options=payment_method_options
        )
        if payment_method_options
        else {}
    )
    splits = _validate_splits(
        merchant=merchant,
        livemode=livemode,
        amount=amount,
        splits=splits or [],
        platform_fee_amount=platform_fee_amount,
    )
    if capture_method not in PaymentIntent.CaptureMethod.values:
        raise InvalidRequestError(
            "capture_method must be 'automatic' or 'manual'.",
            code="parameter_invalid",
            param="capture_method",
        )
    method = None
    if payment_method:
        method = vault_selectors.payment_method_get_for_charge(
            merchant_id=merchant.id, livemode=livemode, public_id=payment_method
        )
    intent = PaymentIntent(
        # its id now, not at insert: create+confirm's tx A may roll back and insert it again
        public_id=new_public_id("pi"),
        merchant=merchant,
        livemode=livemode,
        amount=amount,
        currency=currency,
        capture_method=capture_method,
        payment_method=method,
        order_id=order_id,
        customer_email=customer_email,
        description=description,
        metadata=metadata or {},
        splits=splits,
        platform_fee_amount=platform_fee_amount,
        return_url=return_url,
        payment_method_options=options,
    )
    if method is not None:
        intent.attach_payment_method()
    return intent


@dataclass
class NewIntentRecords:
    """The outbox and audit rows of an intent inserted by the current transaction, held until
    the transaction's last step writes them all: one outbox and one audit statement for the
    whole of create+confirm's tx A instead of one of each per change."""

    events: list[tuple[str, dict, dict]] = field(default_factory=list)
    audit: list = field(default_factory=list)

    def emit(self, intent: PaymentIntent, event_type: str, previous: dict | None = None) -> None:
        self.events.append((event_type, intent_representation(intent), previous or {}))

    def write(self, intent: PaymentIntent) -> None:
        if self.events:
            outbox_record_new_object(obj=intent, object_type="payment_intent", events=self.events)
        if self.audit:
            audit_record_all(self.audit)
        self.events, self.audit = [], []


def intent_insert(intent: PaymentIntent, *, actor: Actor) -> None:
    """Inside the caller's transaction: the prepared intent, its `payment_intent.created` outbox
    row and its audit row (create without confirm, and create+confirm's explicit branches;
    its usual path writes them in tx A's one statement, confirm.py)."""
    intent.save()
    records = NewIntentRecords()
    intent_created(intent, actor=actor, records=records)
    records.write(intent)


def intent_created(intent: PaymentIntent, *, actor: Actor, records: NewIntentRecords) -> None:
    """The created event and audit row of `intent` as it is now, held in `records`."""
    records.emit(intent, "payment_intent.created")
    records.audit.append(
        audit_entry(
            actor=actor,
            action="payment_intent.created",
            object_type="payment_intent",
            object_id=intent.public_id,
            merchant_id=intent.merchant_id,
            livemode=intent.livemode,
            changes={"amount": [None, intent.amount], "currency": [None, intent.currency]},
        )
    )


def _validate_return_url(url: str, *, livemode: bool) -> None:
    """Where the shopper's browser is sent after 3-D Secure: an absolute http(s) URL and nothing
    a browser could read differently from us (control characters and spaces, which browsers
    strip; backslashes, which they read as slashes; credentials, which hide the real host)."""
    if not url:
        return
    problem = None
    if not isinstance(url, str) or len(url) > 2000:
        problem = "of at most 2000 characters"
    elif not url.isprintable() or any(c.isspace() or c == "\\" for c in url):
        problem = "without spaces, control characters or backslashes"
    else:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            parts = None
        schemes = ("https",) if livemode else ("https", "http")
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            problem = "with a host"
        elif parts.username is not None or parts.password is not None or "@" in parts.netloc:
            problem = "without credentials"
    if problem:
        raise InvalidRequestError(
            "return_url must be an absolute https URL"
            + ("" if livemode else " (http too in test mode)")
            + f" {problem}.",
            code="url_invalid",
            param="return_url",
        )


def _validate_splits(
    *, merchant, livemode: bool, amount: int, splits: list[dict], platform_fee_amount
) -> list[dict]:
    """Marketplace splits: each seller must be this merchant's, amounts positive integers, and
    splits plus the platform fee may not exceed the payment amount."""
    if (
        isinstance(platform_fee_amount, bool)
        or not isinstance(platform_fee_amount, int)
        or (platform_fee_amount < 0)
    ):
        raise InvalidRequestError(
            "platform_fee_amount must be a non-negative integer.",
            code="amount_invalid",
            param="platform_fee_amount",
        )
    clean, seen = [], set()
    for index, split in enumerate(splits):
        param = f"splits[{index}]"
        seller = merchant_selectors.seller_get_for_split(
            merchant_id=merchant.id,
            livemode=livemode,
            public_id=split["seller"],
            param=f"{param}[seller]",
        )
        if seller.public_id in seen:
            raise InvalidRequestError(
                "Each seller may appear once in splits.",
                code="parameter_duplicate",
                param=f"{param}[seller]",
            )
        seen.add(seller.public_id)
        clean.append(
            {
                "seller": seller.public_id,
                "amount": validate_amount(split["amount"], param=f"{param}[amount]"),
            }
        )
    total = sum(s["amount"] for s in clean) + platform_fee_amount
    if total > amount:
        raise InvalidRequestError(
            f"Splits and platform fee ({total}) exceed the payment amount ({amount}).",
            code="splits_exceed_amount",
            param="splits" if clean else "platform_fee_amount",
        )
    return clean
