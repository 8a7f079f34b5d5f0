"""Radar's writes: lists and their items, rules and their versions, the assessment of a payment
on the confirm path, reviews and blocked payments (docs/risk.md)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core import metrics
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.redis_client import Queued
from apps.events.services import outbox_record
from apps.risk import engine, velocity
from apps.risk.engine import Assessment
from apps.risk.lang import RuleSyntaxError, parse
from apps.risk.models import (
    BlockedPayment,
    ItemType,
    Review,
    RiskRule,
    RiskRuleVersion,
    RuleAction,
    ValueList,
    ValueListItem,
)
from apps.risk.signals import payment_signals

# Shipped for every merchant, disabled until the merchant enables them (docs/risk.md)
DEFAULT_RULES = {
    "card_testing_card": (
        RuleAction.BLOCK,
        ":declines_per_card_hourly: >= 5",
        "Card testing: a card declined 5 times within an hour",
    ),
    "card_testing_ip": (
        RuleAction.BLOCK,
        ":cards_per_ip_hourly: >= 5 and :declines_per_ip_hourly: >= 3",
        "Card testing: 5 cards from one IP within an hour, 3 of them declined",
    ),
    "mismatched_countries": (
        RuleAction.REVIEW,
        ":card_country: != :ip_country: and :amount: > 50000",
        "A large payment from an IP in another country than the card's",
    ),
}

_ALIAS = re.compile(r"^[A-Za-z0-9_]{1,100}$")


def _bump(merchant_id: int | None, livemode: bool) -> None:
    transaction.on_commit(lambda: velocity.generation_bump(merchant_id, livemode))


# ------------------------------------------------------------------------------ value lists


def value_list_validate(*, alias: str, item_type: str) -> None:
    if not _ALIAS.match(alias or ""):
        raise InvalidRequestError(
            "An alias is 1 to 100 letters, digits or underscores.",
            code="value_list_alias_invalid",
            param="alias",
        )
    if item_type not in ItemType.values:
        raise InvalidRequestError(
            f"item_type must be one of {', '.join(ItemType.values)}.",
            code="value_list_item_type_invalid",
            param="item_type",
        )


def value_list_item_validate(*, value_list: ValueList, value: str) -> str:
    """The value as the list stores it; raises `value_list_item_invalid` naming `value`."""
    return _normalize_item(value_list.item_type, value)


def value_list_create(
    *,
    merchant_id: int | None,
    livemode: bool,
    actor: Actor,
    alias: str,
    name: str,
    item_type: str,
    metadata: dict | None = None,
) -> ValueList:
    value_list_validate(alias=alias, item_type=item_type)
    try:
        with transaction.atomic():
            value_list = ValueList.objects.create(
                merchant_id=merchant_id,
                livemode=livemode,
                alias=alias,
                name=name,
                item_type=item_type,
                metadata=metadata or {},
                created_by=actor.id[:150],
            )
            audit_record(
                actor=actor,
                action="radar.value_list.created",
                object_type="radar.value_list",
                object_id=value_list.public_id,
                merchant_id=merchant_id,
                livemode=livemode,
                changes={"alias": alias, "item_type": item_type},
            )
    except IntegrityError:
        raise InvalidRequestError(
            f"A value list with alias {alias!r} already exists.",
            code="value_list_alias_taken",
            param="alias",
        ) from None
    _bump(merchant_id, livemode)
    return value_list


def value_list_delete(*, value_list: ValueList, actor: Actor) -> ValueList:
    with transaction.atomic():
        rules = RiskRule.objects.filter(livemode=value_list.livemode, predicate__contains="@")
        if value_list.merchant_id is not None:
            rules = rules.filter(merchant_id=value_list.merchant_id)
        for rule in rules:
            if value_list.alias in parse(rule.predicate).lists:
                raise ConflictError(
                    f"Rule {rule.public_id} uses @{value_list.alias}: change it first.",
                    code="value_list_in_use",
                )
        audit_record(
            actor=actor,
            action="radar.value_list.deleted",
            object_type="radar.value_list",
            object_id=value_list.public_id,
            merchant_id=value_list.merchant_id,
            livemode=value_list.livemode,
        )
        value_list.delete()
    _bump(value_list.merchant_id, value_list.livemode)
    return value_list


_FINGERPRINT = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+$")


def _normalize_item(item_type: str, value: str) -> str:
    value = (value or "").strip()
    ok = True
    if item_type == ItemType.CARD_FINGERPRINT:
        ok = bool(_FINGERPRINT.match(value))
    elif item_type == ItemType.CARD_BIN:
        ok = value.isdigit() and 6 <= len(value) <= 8
    elif item_type == ItemType.EMAIL:
        value = value.lower()
        ok = bool(_EMAIL.match(value)) and bool(_DOMAIN.match(value.rpartition("@")[2]))
    elif item_type == ItemType.EMAIL_DOMAIN:
        value = value.lower()
        ok = bool(_DOMAIN.match(value))
    elif item_type == ItemType.IP_ADDRESS:
        try:
            value = str(ipaddress.ip_address(value))
        except ValueError:
            ok = False
    elif item_type == ItemType.COUNTRY:
        value = value.upper()
        ok = len(value) == 2 and value.isalpha() and value.isascii()
    else:
        ok = 0 < len(value) <= 800
    if not ok:
        raise InvalidRequestError(
            f"{value!r} is not a valid {item_type} for this list.",
            code="value_list_item_invalid",
            param="value",
        )
    return value


def value_list_item_create(*, value_list: ValueList, value: str, actor: Actor) -> ValueListItem:
    normalized = _normalize_item(value_list.item_type, value)
    try:
        with transaction.atomic():
            item = ValueListItem.objects.create(
                value_list=value_list, value=normalized, created_by=actor.id[:150]
            )
            audit_record(
                actor=actor,
                action="radar.value_list_item.created",
                object_type="radar.value_list_item",
                object_id=item.public_id,
                merchant_id=value_list.merchant_id,
                livemode=value_list.livemode,
                changes={"value_list": value_list.public_id},
            )
    except IntegrityError:
        raise InvalidRequestError(
            f"{normalized!r} is already in @{value_list.alias}.",
            code="value_list_item_exists",
            param="value",
        ) from None
    _bump(value_list.merchant_id, value_list.livemode)
    return item


def value_list_item_delete(*, item: ValueListItem, actor: Actor) -> ValueListItem:
    value_list = item.value_list
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="radar.value_list_item.deleted",
            object_type="radar.value_list_item",
            object_id=item.public_id,
            merchant_id=value_list.merchant_id,
            livemode=value_list.livemode,
        )
        item.delete()
    _bump(value_list.merchant_id, value_list.livemode)
    return item


# ------------------------------------------------------------------------------------ rules


def rule_validate(
    *, merchant_id: int | None, livemode: bool, action: str, predicate: str
) -> tuple[str, str]:
    """The rule's action and predicate as stored; raises the parse error with its `param`."""
    if action not in RuleAction.values:
        raise InvalidRequestError(
            f"action must be one of {', '.join(RuleAction.values)}.",
            code="rule_action_invalid",
            param="action",
        )
    if not isinstance(predicate, str) or len(predicate) > 2000:
        raise InvalidRequestError(
            "The predicate is a string of at most 2000 characters.",
            code="rule_syntax_invalid",
            param="predicate",
        )
    try:
        parsed = parse(predicate, lists=engine.lists_available(merchant_id, livemode))
    except RuleSyntaxError as exc:
        raise InvalidRequestError(exc.message, code=exc.code, param="predicate") from None
    if parsed.action is not None:
        if parsed.action != action:
            raise InvalidRequestError(
                f"The predicate says {parsed.action!r} but the action is {action!r}.",
                code="rule_action_mismatch",
                param="predicate",
            )
        predicate = predicate.split(" if ", 1)[1] if " if " in predicate else predicate
    return action, predicate.strip()


def _version(rule: RiskRule, actor: Actor, note: str = "") -> RiskRuleVersion:
    return RiskRuleVersion.objects.create(
        rule=rule,
        number=rule.version,
        action=rule.action,
        predicate=rule.predicate,
        enabled=rule.enabled,
        note=note,
        created_by=actor.id[:150],
    )


def rule_create(
    *,
    merchant_id: int | None,
    livemode: bool,
    actor: Actor,
    action: str,
    predicate: str,
    description: str = "",
    enabled: bool = True,
    default_key: str = "",
) -> RiskRule:
    action, predicate = rule_validate(
        merchant_id=merchant_id, livemode=livemode, action=action, predicate=predicate
    )
    with transaction.atomic():
        rule = RiskRule.objects.create(
            merchant_id=merchant_id,
            livemode=livemode,
            action=action,
            predicate=predicate,
            description=description,
            enabled=enabled,
            default_key=default_key,
        )
        _version(rule, actor, "created")
        audit_record(
            actor=actor,
            action="radar.rule.created",
            object_type="radar.rule",
            object_id=rule.public_id,
            merchant_id=merchant_id,
            livemode=livemode,
            changes={"action": action, "predicate": predicate, "enabled": enabled},
        )
    _bump(merchant_id, livemode)
    return rule


def rule_update(
    *,
    rule: RiskRule,
    actor: Actor,
    action: str | None = None,
    predicate: str | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    note: str = "",
) -> RiskRule:
    new_action, new_predicate = rule_validate(
        merchant_id=rule.merchant_id,
        livemode=rule.livemode,
        action=action if action is not None else rule.action,
        predicate=predicate if predicate is not None else rule.predicate,
    )
    with transaction.atomic():
        rule = RiskRule.objects.select_for_update().get(pk=rule.pk)
        before = {"action": rule.action, "predicate": rule.predicate, "enabled": rule.enabled}
        rule.action, rule.predicate = new_action, new_predicate
        if enabled is not None:
            rule.enabled = enabled
        if description is not None:
            rule.description = description
        after = {"action": rule.action, "predicate": rule.predicate, "enabled": rule.enabled}
        if after != before:
            rule.version += 1
            _version(rule, actor, note)
        rule.save()
        audit_record(
            actor=actor,
            action="radar.rule.updated",
            object_type="radar.rule",
            object_id=rule.public_id,
            merchant_id=rule.merchant_id,
            livemode=rule.livemode,
            changes={"before": before, "after": after},
        )
    _bump(rule.merchant_id, rule.livemode)
    return rule


def rules_install_defaults(*, merchant_id: int, livemode: bool, actor: Actor) -> int:
    """The platform's default rules for the merchant, disabled; idempotent."""
    have = set(
        RiskRule.objects.filter(merchant_id=merchant_id, livemode=livemode)
        .exclude(default_key="")
        .values_list("default_key", flat=True)
    )
    made = 0
    for key, (action, predicate, description) in DEFAULT_RULES.items():
        if key in have:
            continue
        try:
            with transaction.atomic():
                rule_create(
                    merchant_id=merchant_id,
                    livemode=livemode,
                    actor=actor,
                    action=action,
                    predicate=predicate,
                    description=description,
                    enabled=False,
                    default_key=key,
                )
                made += 1
        except IntegrityError:  # another request installed it meanwhile
            pass
    return made


# ------------------------------------------------------------------------- the payment path


@dataclass
class PaymentFacts:
    merchant_id: int
    livemode: bool
    payment_intent: str
    amount: int
    currency: str
    card: dict  # the vault's facts: brand, funding, bin, issuer_country, fingerprint
    email: str
    client_ip: str
    customer: str
    metadata: dict
    merchant_country: str
    customer_initiated: bool = True


def risk_assess(*, facts: PaymentFacts, now: float | None = None) -> Assessment:
    """Inside the confirm's tx A, before routing: the signals, the attempt recorded in the
    velocity counters (one Redis round trip), the score and the merchant's rules."""
    signals = payment_signals(
        amount=facts.amount,
        currency=facts.currency,
        card=facts.card,
        email=facts.email,
        client_ip=facts.client_ip,
        customer=facts.customer,
        metadata=facts.metadata,
        merchant_country=facts.merchant_country,
        customer_initiated=facts.customer_initiated,
    )
    counts, generations = velocity.record_and_read(
        merchant_id=facts.merchant_id,
        livemode=facts.livemode,
        signals=signals,
        event_id=facts.payment_intent,
        now=now,
    )
    signals.update(counts)
    rules = engine.compiled_rules(facts.merchant_id, facts.livemode, generations)
    assessment = engine.evaluate(rules, signals)
    # pp_risk_decisions_total (issue 17, docs/observability.md): one in-memory increment
    metrics.risk_decided(
        livemode=facts.livemode,
        decision=_METRIC_DECISIONS.get(assessment.type, "other")
        if not (assessment.type == "authorized" and assessment.request_3ds)
        else "challenge",
    )
    return assessment


_METRIC_DECISIONS = {"authorized": "allow", "manual_review": "review", "blocked": "block"}


def risk_record_decline(
    *,
    facts_signals: dict,
    merchant_id: int,
    livemode: bool,
    event_id: str,
    alongside: Queued | None = None,
) -> None:
    """`alongside`: another module's Redis commands for the same round trip (the CVC's
    discard)."""
    velocity.record_decline(
        merchant_id=merchant_id,
        livemode=livemode,
        signals=facts_signals,
        event_id=event_id,
        alongside=alongside,
    )


def risk_payment_blocked(
    *, facts: PaymentFacts, assessment: Assessment, alongside: Queued | None = None
) -> None:
    """Inside tx A: the blocked payment recorded for the back-office; the block counts as a
    decline (card testing goes on being blocked), in one Redis round trip with `alongside`."""
    rule = assessment.rule
    BlockedPayment.objects.create(
        merchant_id=facts.merchant_id,
        livemode=facts.livemode,
        payment_intent=facts.payment_intent,
        amount=facts.amount,
        currency=facts.currency,
        rule=rule.id if rule else "",
        predicate=rule.predicate if rule else "",
        risk_score=assessment.risk_score,
        risk_level=assessment.risk_level,
        signals=stored_signals(assessment.signals),
    )
    velocity.record_decline(
        merchant_id=facts.merchant_id,
        livemode=facts.livemode,
        signals=assessment.signals,
        event_id=facts.payment_intent,
        alongside=alongside,
    )


_STORED = (
    "card_country",
    "card_bin",
    "card_brand",
    "card_funding",
    "email_domain",
    "ip_address",
    "ip_country",
    "amount",
    "currency",
)


def stored_signals(signals: dict) -> dict:
    """What is kept with the outcome (for the timeline and the rule test): no raw email,
    the fingerprint only as the vault's own (already a keyed hash), the counters."""
    kept = {k: signals.get(k) for k in _STORED}
    kept["card_fingerprint"] = signals.get("card_fingerprint", "")
    kept["has_email"] = bool(signals.get("email"))
    kept["has_customer"] = bool(signals.get("customer"))
    kept.update({k: v for k, v in signals.items() if "_per_" in k and v})
    return kept


def _review_payload(review: Review) -> dict:
    from apps.risk.representations import review_representation

    return review_representation(review)


def review_open(
    *,
    merchant_id: int,
    livemode: bool,
    payment_intent: str,
    amount: int,
    currency: str,
    capture_on_approve: bool,
    outcome: dict,
) -> Review:
    """Inside tx B, when a payment in review is authorized: the queue's row and review.opened."""
    rule = outcome.get("rule") or {}
    review = Review.objects.create(
        merchant_id=merchant_id,
        livemode=livemode,
        payment_intent=payment_intent,
        amount=amount,
        currency=currency,
        capture_on_approve=capture_on_approve,
        rule=rule.get("id", ""),
        predicate=rule.get("predicate", ""),
        risk_score=outcome.get("risk_score", 0),
        risk_level=outcome.get("risk_level", ""),
    )
    outbox_record(
        merchant_id=merchant_id,
        livemode=livemode,
        object_type="review",
        object_id=review.public_id,
        event_type="review.opened",
        payload=_review_payload(review),
    )
    return review


def review_close_for_intent(*, payment_intent: str, reason: str) -> Review | None:
    """The payment was captured or canceled outside the queue: its open review is closed."""
    review = Review.objects.filter(payment_intent=payment_intent, status=Review.Status.OPEN).first()
    if review is None:
        return None
    return review_close(
        review=review, status=Review.Status.CLOSED, actor=Actor.system(f"payment_{reason}")
    )


def review_close(*, review: Review, status: str, actor: Actor) -> Review:
    with transaction.atomic():
        review = Review.objects.select_for_update().get(pk=review.pk)
        if review.status != Review.Status.OPEN:
            raise ConflictError("This review is already closed.", code="review_closed")
        previous = {"open": True}
        review.status = status
        review.closed_at = timezone.now()
        review.closed_by = actor.id[:150]
        review.save()
        audit_record(
            actor=actor,
            action=f"radar.review.{status}",
            object_type="review",
            object_id=review.public_id,
            merchant_id=review.merchant_id,
            livemode=review.livemode,
        )
        outbox_record(
            merchant_id=review.merchant_id,
            livemode=review.livemode,
            object_type="review",
            object_id=review.public_id,
            event_type="review.closed",
            payload=_review_payload(review),
            previous_attributes=previous,
        )
    return review


def review_is_stale(review: Review, *, now=None) -> bool:
    """Open past the authorization window: the authorization may lapse before anyone decides."""
    now = now or timezone.now()
    age = (now - review.opened_at).total_seconds()
    return review.status == Review.Status.OPEN and age > settings.RISK_REVIEW_STALE_SECONDS


def rule_backtest(*, rule: RiskRule, days: int = 30, now=None) -> dict:
    """How the rule would have acted on the merchant's payments of the last `days` days, from
    the signals each payment's outcome stored (velocity as counted then). Like the routing
    backtest: read only, nothing changes."""
    from datetime import timedelta

    from apps.intents import selectors as intents_selectors

    now = now or timezone.now()
    parsed = parse(rule.predicate)
    fn = engine.compile_tree(parsed.tree)
    lists = engine.compiled_lists(rule.merchant_id, rule.livemode, parsed.lists)
    rows = intents_selectors.intent_risk_history(
        merchant_id=rule.merchant_id, livemode=rule.livemode, since=now - timedelta(days=days)
    )
    matched: list[str] = []
    for row in rows:
        outcome = row["risk_outcome"] or {}
        signals = dict(outcome.get("signals") or {})
        signals["email"] = (row["customer_email"] or "").lower()
        signals["metadata"] = row["metadata"] or {}
        signals["customer"] = str(signals["metadata"].get("customer", ""))
        signals["risk_score"] = outcome.get("risk_score", 0)
        signals["risk_level"] = outcome.get("risk_level", "normal")
        if fn(signals, lists):
            matched.append(row["public_id"])
    count = len(matched)
    return {
        "object": "radar.rule_test",
        "rule": rule.public_id,
        "action": rule.action,
        "days": days,
        "payments": len(rows),
        "matched": count,
        "would_block": count if rule.action == RuleAction.BLOCK else 0,
        "would_review": count if rule.action == RuleAction.REVIEW else 0,
        "would_request_3ds": count if rule.action == RuleAction.REQUEST_3DS else 0,
        "would_allow": count if rule.action == RuleAction.ALLOW else 0,
        "examples": matched[:10],
    }


def review_approve(*, review: Review, actor: Actor) -> Review:
    """Staff approve: the payment is captured if the merchant had asked for automatic capture
    (Radar forced it to manual), else left for the merchant to capture."""
    from apps.intents import selectors as intents_selectors
    from apps.intents import services as intents_services

    # the decision first (closing it), then the capture, so the capture's own close finds
    # nothing open; a capture the PSP refuses leaves an approved review and a payment the
    # merchant can capture again
    review = review_close(review=review, status=Review.Status.APPROVED, actor=actor)
    if review.capture_on_approve:
        intent = intents_selectors.intent_get(
            merchant_id=review.merchant_id,
            livemode=review.livemode,
            public_id=review.payment_intent,
        )
        if intent.status == "requires_capture":
            intents_services.intent_capture(intent=intent, actor=actor)
    return review


def review_reject(*, review: Review, actor: Actor) -> Review:
    """Staff reject: an authorization still open is canceled (released at the PSP); one the
    merchant already captured is refunded in full."""
    from apps.intents import selectors as intents_selectors
    from apps.intents import services as intents_services

    review = review_close(review=review, status=Review.Status.REJECTED, actor=actor)
    intent = intents_selectors.intent_get(
        merchant_id=review.merchant_id, livemode=review.livemode, public_id=review.payment_intent
    )
    if intent.status == "requires_capture":
        intents_services.intent_cancel(intent=intent, actor=actor, cancellation_reason="fraudulent")
    elif intent.status == "succeeded" and intent.amount_received > intent.amount_refunded:
        intents_services.refund_create(
            merchant=intent.merchant,
            livemode=intent.livemode,
            payment_intent=intent.public_id,
            actor=actor,
            reason="fraudulent",
        )
    return review


def sca_options_validate(*, amount: int, currency: str, options: dict | None) -> dict:
    """payment_method_options.card as stored on the intent; raises the 400 with its param."""
    from apps.risk import sca

    card = (options or {}).get("card") or {}
    mode = card.get("request_three_d_secure") or "automatic"
    exemption = card.get("sca_exemption") or ""
    refusal = sca.exemption_refusal(
        amount=amount, currency=currency, mode=mode, exemption=exemption
    )
    if refusal:
        raise InvalidRequestError(
            refusal,
            code="sca_exemption_not_allowed",
            param="payment_method_options[card][sca_exemption]",
        )
    stored = {"request_three_d_secure": mode}
    if exemption:
        stored["sca_exemption"] = exemption
    return {"card": stored}


def sca_decide(*, options: dict | None, assessment: Assessment) -> dict:
    from apps.risk import sca

    return sca.sca_decide(
        options=(options or {}).get("card") or {},
        assessment=assessment,
        signals=assessment.signals,
    )


# ------------------------------------------------------------------------------- surcharges


def surcharge_rule_create(
    *,
    merchant_id: int,
    livemode: bool,
    actor: Actor,
    currency: str,
    percent_bps: int = 0,
    fixed: int = 0,
    cap: int | None = None,
    card_brand: str = "*",
    card_funding: str = "*",
    card_country: str = "*",
):
    """A merchant's surcharge rule; each bad input its own code and param, nothing saved."""
    from apps.core.money import normalize_currency
    from apps.risk.models import SurchargeRule
    from apps.risk.signals import SCA_COUNTRIES

    currency = normalize_currency(currency)
    if not isinstance(percent_bps, int) or not 0 <= percent_bps <= 10000:
        raise InvalidRequestError(
            "percent_bps is 0 to 10000 (basis points).",
            code="surcharge_percent_invalid",
            param="percent_bps",
        )
    for name, value in (("fixed", fixed), ("cap", cap)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidRequestError(
                f"{name} is a non-negative amount in minor units.",
                code="surcharge_amount_invalid",
                param=name,
            )
    if cap is not None and fixed > cap:
        raise InvalidRequestError(
            "The fixed surcharge is above the rule's cap.",
            code="surcharge_above_cap",
            param="fixed",
        )
    if percent_bps == 0 and fixed == 0:
        raise InvalidRequestError(
            "A surcharge needs a percentage or a fixed amount.",
            code="surcharge_amount_invalid",
            param="percent_bps",
        )
    card_country = (card_country or "*").upper()
    if card_country in SCA_COUNTRIES:
        raise InvalidRequestError(
            f"Consumer cards issued in {card_country} may not be surcharged.",
            code="surcharge_forbidden",
            param="card_country",
        )
    if card_country != "*" and not (len(card_country) == 2 and card_country.isalpha()):
        raise InvalidRequestError(
            "card_country is a two-letter country code or *.",
            code="parameter_invalid",
            param="card_country",
        )
    if card_funding not in ("*", "credit", "debit", "prepaid"):
        raise InvalidRequestError(
            "card_funding is credit, debit, prepaid or *.",
            code="parameter_invalid",
            param="card_funding",
        )
    with transaction.atomic():
        rule = SurchargeRule.objects.create(
            merchant_id=merchant_id,
            livemode=livemode,
            currency=currency,
            percent_bps=percent_bps,
            fixed=fixed,
            cap=cap,
            card_brand=(card_brand or "*").lower(),
            card_funding=card_funding,
            card_country=card_country,
        )
        audit_record(
            actor=actor,
            action="surcharge_rule.created",
            object_type="surcharge_rule",
            object_id=rule.public_id,
            merchant_id=merchant_id,
            livemode=livemode,
            changes={"currency": currency, "percent_bps": percent_bps, "fixed": fixed, "cap": cap},
        )
    _bump(merchant_id, livemode)
    return rule


def surcharge_for_payment(*, assessment: Assessment, base: int, currency: str, card: dict) -> dict:
    """The payment's surcharge, from the merchant's rules compiled with its Radar rules."""
    from apps.risk.surcharges import surcharge_for

    rules = assessment.rules.surcharges if assessment.rules is not None else []
    if not rules:
        return {"amount": 0, "rule": None, "reason": "no_rule"}
    return surcharge_for(rules, base=base, currency=currency, card=card)
