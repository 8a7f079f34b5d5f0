"""Evaluating a merchant's rules on a payment's signals, in process (docs/risk.md "Rules").

Each process keeps the merchant's enabled rules compiled (apps/risk/lang.py) with the lists
they name, keyed by the generation counters that every rule or list change bumps in Redis; the
counters arrive with the velocity read (one round trip), so a change is seen by the next
payment everywhere. Entries older than CACHE_MAX_AGE are rebuilt anyway (a bump Redis lost)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.db.models import Q

from apps.risk import score as scoring
from apps.risk.lang import RuleSyntaxError, compile_tree, parse
from apps.risk.models import RiskRule, RuleAction, SurchargeRule, ValueList, ValueListItem
from apps.risk.surcharges import CompiledSurcharge

logger = logging.getLogger(__name__)

CACHE_MAX_AGE = 60.0
_ORDER = (RuleAction.ALLOW, RuleAction.BLOCK, RuleAction.REVIEW)


@dataclass(frozen=True)
class CompiledRule:
    id: str
    action: str
    predicate: str
    fn: object


@dataclass
class CompiledRules:
    by_action: dict[str, list[CompiledRule]]
    lists: dict[str, frozenset]
    generations: tuple | None
    surcharges: list = field(default_factory=list)
    built_at: float = field(default_factory=time.monotonic)


@dataclass
class Assessment:
    type: str  # authorized | manual_review | blocked
    risk_score: int
    risk_level: str
    rule: CompiledRule | None
    request_3ds: CompiledRule | None
    contributions: dict[str, int]
    signals: dict
    rules: CompiledRules | None = None  # what was evaluated (the surcharges come with them)

    def outcome(self) -> dict:
        """Stripe's `outcome` shape, plus the score's contributions."""
        rule = self.rule
        return {
            "type": self.type,
            "risk_level": self.risk_level,
            "risk_score": self.risk_score,
            "rule": {"id": rule.id, "action": rule.action, "predicate": rule.predicate}
            if rule
            else None,
            "reason": "rule" if rule and rule.action != RuleAction.ALLOW else None,
            "seller_message": _SELLER_MESSAGE[self.type],
            "request_three_d_secure": self.request_3ds.id if self.request_3ds else None,
            "score_contributions": self.contributions,
        }


_SELLER_MESSAGE = {
    "authorized": "Payment complete.",
    "manual_review": "Radar placed this payment in review.",
    "blocked": "Radar blocked this payment.",
}

_cache: dict[tuple[int, bool], CompiledRules] = {}
_lock = threading.Lock()


def lists_available(merchant_id: int | None, livemode: bool) -> dict[str, str]:
    """alias -> item type of the lists a merchant's rule may name (its own win)."""
    rows = ValueList.objects.filter(livemode=livemode, merchant__isnull=True).values_list(
        "alias", "item_type"
    )
    out = dict(rows)
    if merchant_id is not None:
        out.update(
            ValueList.objects.filter(merchant_id=merchant_id, livemode=livemode).values_list(
                "alias", "item_type"
            )
        )
    return out


def _build(merchant_id: int, livemode: bool, generations: tuple | None) -> CompiledRules:
    by_action: dict[str, list[CompiledRule]] = {a: [] for a in RuleAction.values}
    used: set[str] = set()
    for rule in RiskRule.objects.filter(merchant_id=merchant_id, livemode=livemode, enabled=True):
        try:
            parsed = parse(rule.predicate)
        except RuleSyntaxError:  # saved valid, invalid now (a later release): skip, loudly
            logger.error("risk rule %s no longer parses; skipped", rule.public_id)
            continue
        used |= parsed.lists
        by_action[rule.action].append(
            CompiledRule(rule.public_id, rule.action, rule.predicate, compile_tree(parsed.tree))
        )
    surcharges = [
        CompiledSurcharge(
            s.public_id,
            s.currency,
            s.card_brand,
            s.card_funding,
            s.card_country,
            s.percent_bps,
            s.fixed,
            s.cap,
        )
        for s in SurchargeRule.objects.filter(
            merchant_id=merchant_id, livemode=livemode, enabled=True
        )
    ]
    return CompiledRules(
        by_action, compiled_lists(merchant_id, livemode, used), generations, surcharges
    )


def compiled_lists(merchant_id: int | None, livemode: bool, used) -> dict[str, frozenset]:
    """alias -> its values (lower case) for the lists `used` names: the merchant's own list of
    an alias, else the platform's."""
    lists: dict[str, frozenset] = {}
    if used:
        owners = {}
        for vl in ValueList.objects.filter(livemode=livemode, alias__in=used).filter(
            Q(merchant_id=merchant_id) | Q(merchant__isnull=True)
        ):
            if vl.alias not in owners or vl.merchant_id is not None:
                owners[vl.alias] = vl.pk
        values: dict[int, set] = {pk: set() for pk in owners.values()}
        for list_id, value in ValueListItem.objects.filter(
            value_list_id__in=list(owners.values())
        ).values_list("value_list_id", "value"):
            values[list_id].add(value.lower())
        lists = {alias: frozenset(values[pk]) for alias, pk in owners.items()}
    return lists


def compiled_rules(merchant_id: int, livemode: bool, generations: tuple | None) -> CompiledRules:
    """`generations`: as the velocity call read them; None when Redis did not answer (then a
    cached entry is used within its maximum age, whatever its generation)."""
    key = (merchant_id, livemode)
    entry = _cache.get(key)
    if (
        entry is None
        or (generations is not None and entry.generations != generations)
        or time.monotonic() - entry.built_at > CACHE_MAX_AGE
    ):
        entry = _build(merchant_id, livemode, generations)
        with _lock:
            _cache[key] = entry
    return entry


def cache_clear() -> None:
    with _lock:
        _cache.clear()


def evaluate(rules: CompiledRules, signals: dict) -> Assessment:
    """Radar's order: every request_3ds rule; then allow, block, review: the first that
    matches decides."""
    risk_score, contributions = scoring.risk_score(signals)
    signals["risk_score"] = risk_score
    signals["risk_level"] = level = scoring.risk_level(risk_score)
    lists = rules.lists
    request_3ds = next(
        (r for r in rules.by_action[RuleAction.REQUEST_3DS] if r.fn(signals, lists)), None
    )
    decided = None
    for action in _ORDER:
        decided = next((r for r in rules.by_action[action] if r.fn(signals, lists)), None)
        if decided is not None:
            break
    kind = {RuleAction.BLOCK: "blocked", RuleAction.REVIEW: "manual_review"}.get(
        decided.action if decided else None, "authorized"
    )
    return Assessment(kind, risk_score, level, decided, request_3ds, contributions, signals, rules)
