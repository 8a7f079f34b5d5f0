"""Payment intents, attempts and refunds through apps.intents.services, so every row, ledger
journal, outbox event and PSP call is the one production makes.

The intent's status is an FSM field that only its transitions change (protected): a factory
never writes it. `PaymentIntentFactory(status=...)` names the state to *reach*, and the factory
drives the intent there through the services:

- requires_payment_method: created without a payment method;
- requires_confirmation (the default): created with a tokenized card (PaymentMethodFactory);
- requires_action, requires_capture, succeeded: confirmed (3-D Secure card, manual or automatic
  capture; succeeded with capture_method="manual" is captured afterwards);
- canceled: created, then canceled.

Confirming calls a PSP: the merchant needs an enabled connector on a running simulator (the
`stripe_connector`/`connectors` fixtures of tests/intents/conftest.py). `processing` needs an
unknown PSP outcome, which only the simulator's faults make, so no factory builds it; a test
about a tampered row writes its status with `QuerySet.update` and says so."""

from __future__ import annotations

import factory

from apps.intents import services as intent_services
from apps.intents.models import IntentStatus, PaymentAttempt, PaymentIntent, Refund
from tests.factories.base import ServiceFactory
from tests.factories.merchants import MerchantFactory
from tests.factories.vault import VISA, PaymentMethodFactory

S = IntentStatus
Outcome = PaymentAttempt.Outcome
# the simulator's test cards (apps/psp_simulator/cards.py)
THREE_DS_CARD = "4000002500003155"
SOFT_DECLINE_CARD = "4000000000000002"  # generic_decline
HARD_DECLINE_CARD = "4000000000009987"  # lost_card
OUTCOME_CARDS = {
    Outcome.APPROVED: VISA,
    Outcome.REQUIRES_ACTION: THREE_DS_CARD,
    Outcome.SOFT_DECLINE: SOFT_DECLINE_CARD,
    Outcome.HARD_DECLINE: HARD_DECLINE_CARD,
}
_CONFIRMED = (S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, S.SUCCEEDED)


def _fresh(intent: PaymentIntent) -> PaymentIntent:
    return PaymentIntent.objects.select_related("payment_method", "connector").get(pk=intent.pk)


class PaymentIntentFactory(ServiceFactory):
    class Meta:
        model = PaymentIntent

    class Params:
        # the card tokenized for it, unless `payment_method` is given
        card_number = factory.LazyAttribute(
            lambda o: THREE_DS_CARD if o.status == S.REQUIRES_ACTION else VISA
        )

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    amount = 2000
    currency = "eur"
    status = S.REQUIRES_CONFIRMATION  # the state to reach (see the module docstring)
    capture_method = factory.LazyAttribute(
        lambda o: "manual" if o.status == S.REQUIRES_CAPTURE else "automatic"
    )
    payment_method = factory.LazyAttribute(
        lambda o: (
            None
            if o.status == S.REQUIRES_PAYMENT_METHOD
            else PaymentMethodFactory(
                merchant=o.merchant, livemode=o.livemode, number=o.card_number
            )
        )
    )

    @classmethod
    def _create(cls, model_class, *, status, payment_method, actor, **fields) -> PaymentIntent:
        if status == S.PROCESSING or status not in S.values:
            raise ValueError(f"PaymentIntentFactory cannot reach {status!r} (module docstring)")
        if status == S.REQUIRES_PAYMENT_METHOD and payment_method is not None:
            raise ValueError("an intent with a payment method requires confirmation")
        intent = intent_services.intent_create(
            payment_method=payment_method.public_id if payment_method else None,
            actor=actor,
            **fields,
        )
        if status == S.CANCELED:
            intent = intent_services.intent_cancel(intent=intent, actor=actor)
        elif status in _CONFIRMED:
            intent = intent_services.intent_confirm(intent=intent, actor=actor)
            if status == S.SUCCEEDED and intent.status == S.REQUIRES_CAPTURE:
                intent = intent_services.intent_capture(intent=intent, actor=actor)
        intent = _fresh(intent)
        if intent.status != status:
            raise AssertionError(
                f"{intent.public_id} is {intent.status}, not {status}: has the merchant an "
                "enabled connector on a running simulator (platform_simulator)? "
                f"last_payment_error={intent.last_payment_error}"
            )
        return intent


class PaymentAttemptFactory(ServiceFactory):
    """The attempt a confirm makes: a new intent confirmed with the simulator's card for
    `outcome` (approved, requires_action, soft_decline, hard_decline); returns the intent's last
    attempt (a soft decline fails over: one attempt per connector). Unknown and error outcomes
    need the simulator's faults, set by the test itself."""

    class Meta:
        model = PaymentAttempt

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    amount = 2000
    currency = "eur"
    capture_method = "automatic"
    outcome = Outcome.APPROVED

    @classmethod
    def _create(cls, model_class, *, outcome, actor, **intent_fields) -> PaymentAttempt:
        intent = PaymentIntentFactory(
            status=S.REQUIRES_CONFIRMATION,
            card_number=OUTCOME_CARDS[outcome],
            actor=actor,
            **intent_fields,
        )
        intent_services.intent_confirm(intent=intent, actor=actor)
        attempt = (
            model_class.objects.select_related("intent", "connector")
            .filter(intent=intent)
            .order_by("-sequence")
            .first()
        )
        if attempt is None or attempt.outcome != outcome:
            raise AssertionError(
                f"{intent.public_id}: attempt {attempt and attempt.outcome}, not {outcome}: has "
                "the merchant an enabled connector on a running simulator?"
            )
        return attempt


class RefundFactory(ServiceFactory):
    """A refund of a succeeded intent (a new one unless `intent` is given), of its unrefunded
    amount unless `amount` is given; its status is what the PSP answered."""

    class Meta:
        model = Refund

    intent = factory.SubFactory(PaymentIntentFactory, status=S.SUCCEEDED)
    amount = None
    reason = ""

    @classmethod
    def _create(cls, model_class, *, intent, actor, **fields) -> Refund:
        return intent_services.refund_create(
            merchant=intent.merchant,
            livemode=intent.livemode,
            payment_intent=intent.public_id,
            actor=actor,
            **fields,
        )
