"""Merchants, their API keys and their marketplace sellers, made through apps.merchants.services
(the audit entry, the key hash, the encrypted bank account)."""

from __future__ import annotations

import factory

from apps.merchants import services as merchant_services
from apps.merchants.models import ApiKey, Merchant, Seller
from tests.factories.base import ServiceFactory

DE_BANK = {"country": "DE", "currency": "eur", "account_number": "DE89 3704 0044 0532 0130 00"}
US_BANK = {
    "country": "US",
    "currency": "usd",
    "account_holder_name": "Jenny Rosen",
    "account_number": "000123456789",
    "routing_number": "110000000",
}


class MerchantFactory(ServiceFactory):
    """`live_enabled=True` switches live mode on afterwards, as staff do in the admin once the
    merchant is onboarded (no service owns that switch)."""

    class Meta:
        model = Merchant

    name = factory.Sequence(lambda n: f"Shop {n}")
    email = factory.Sequence(lambda n: f"shop{n}@example.com")
    country = ""
    live_enabled = False

    @classmethod
    def _create(cls, model_class, *, live_enabled: bool, **fields) -> Merchant:
        merchant = merchant_services.merchant_create(**fields)
        if live_enabled:
            merchant.live_enabled = True
            merchant.save(update_fields=["live_enabled"])
        return merchant


class ApiKeyFactory(ServiceFactory):
    """An issued key; the key itself (shown once, never stored) is on the row as `.raw_key`."""

    class Meta:
        model = ApiKey

    merchant = factory.SubFactory(MerchantFactory)
    kind = ApiKey.Kind.SECRET
    livemode = False
    name = ""

    @classmethod
    def _create(cls, model_class, **fields) -> ApiKey:
        issued = merchant_services.api_key_create(**fields)
        issued.api_key.raw_key = issued.raw_key
        return issued.api_key


class SellerFactory(ServiceFactory):
    """A marketplace seller with a German IBAN (`bank_account=US_BANK` for a US account); its
    country is the bank account's unless given."""

    class Meta:
        model = Seller

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    name = factory.Sequence(lambda n: f"Seller {n}")
    bank_account = factory.LazyFunction(lambda: dict(DE_BANK))
    country = factory.LazyAttribute(lambda o: o.bank_account.get("country", "DE"))

    @classmethod
    def _create(cls, model_class, **fields) -> Seller:
        return merchant_services.seller_create(**fields)
