"""Tokenized cards through apps.vault.services: the number only as ciphertext bound to the
row's id, the keyed fingerprint, the CVC encrypted in Redis until the first authorization.
A test never writes a card row by hand."""

from __future__ import annotations

import factory

from apps.vault import cards
from apps.vault import services as vault_services
from apps.vault.models import PaymentMethod
from tests.factories.base import ServiceFactory
from tests.factories.merchants import MerchantFactory

VISA = "4242424242424242"


def _cvc_for(number: str) -> str:
    """A CVC of the right length for the card's brand (4 digits for Amex)."""
    return "1234567890"[: cards.cvc_length(cards.detect_brand(cards.normalize_number(number)))]


class PaymentMethodFactory(ServiceFactory):
    """`PaymentMethodFactory(merchant=m, number="5555555555554444")`; `cvc=None` tokenizes a
    card without its CVC. The simulator's test cards decide the outcome of a payment."""

    class Meta:
        model = PaymentMethod

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    number = VISA
    exp_month = 12
    exp_year = 2034
    cvc = factory.LazyAttribute(lambda o: _cvc_for(o.number))
    billing_name = "Jane Doe"
    billing_email = "jane@example.com"

    @classmethod
    def _create(cls, model_class, **fields) -> PaymentMethod:
        return vault_services.payment_method_create(**fields)
