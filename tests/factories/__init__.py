"""factory_boy factories for the main models, one module per app. Each makes its rows through
the owning app's service (tests/factories/base.py), so a factory-built object is exactly what
production code builds; module docstrings say what each needs (a running simulator for intents
that are confirmed) and which parameters are not model fields."""

from tests.factories.connectors import (
    ADYEN_CREDENTIALS,
    ADYEN_LIVE_URL_PREFIX,
    CREDENTIALS,
    STRIPE_CREDENTIALS,
    ConnectorFactory,
)
from tests.factories.events import WebhookEndpointFactory
from tests.factories.intents import (
    HARD_DECLINE_CARD,
    SOFT_DECLINE_CARD,
    THREE_DS_CARD,
    PaymentAttemptFactory,
    PaymentIntentFactory,
    RefundFactory,
)
from tests.factories.ledger import JournalTransactionFactory, fund_available
from tests.factories.merchants import (
    DE_BANK,
    US_BANK,
    ApiKeyFactory,
    MerchantFactory,
    SellerFactory,
)
from tests.factories.payouts import PayoutFactory
from tests.factories.routing import RoutingProfileFactory, RoutingSettingsFactory
from tests.factories.staff import StaffUserFactory
from tests.factories.vault import VISA, PaymentMethodFactory

__all__ = [
    "ADYEN_CREDENTIALS",
    "ADYEN_LIVE_URL_PREFIX",
    "CREDENTIALS",
    "DE_BANK",
    "HARD_DECLINE_CARD",
    "SOFT_DECLINE_CARD",
    "STRIPE_CREDENTIALS",
    "THREE_DS_CARD",
    "US_BANK",
    "VISA",
    "ApiKeyFactory",
    "ConnectorFactory",
    "JournalTransactionFactory",
    "MerchantFactory",
    "PaymentAttemptFactory",
    "PaymentIntentFactory",
    "PaymentMethodFactory",
    "PayoutFactory",
    "RefundFactory",
    "RoutingProfileFactory",
    "RoutingSettingsFactory",
    "SellerFactory",
    "StaffUserFactory",
    "WebhookEndpointFactory",
    "fund_available",
]
