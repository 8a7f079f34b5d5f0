"""Routing rules: parsing and validation of a profile version, and compilation to predicates.

A version is `{"rules": [rule, ...], "fallback": [connector id, ...]}`; a rule is

    {"name": "EU debit", "match": "all" | "any",
     "conditions": [{"field": "currency", "op": "in", "value": ["eur"]}, ...],
     "strategy": {"type": "priority" | "weighted" | "least_cost" | "success_rate"
                          | "lowest_latency", ...}}

Validation is pure (no database): the caller passes the connectors the merchant may use, and
every error is a `RuleError` naming the parameter (`rules[2][conditions][0][value]`). Rules
are first-match: a rule that an earlier one always pre-empts, or that can never match, is
rejected as unreachable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import iso4217

from apps.connectors.selectors import HEALTH_WINDOW_MAX, SEGMENTS
from apps.core.cards import CARD_BRANDS as BRANDS

FUNDINGS = ("credit", "debit", "prepaid", "unknown")
PAYMENT_METHOD_TYPES = ("card",)
STRATEGIES = ("priority", "weighted", "least_cost", "success_rate", "lowest_latency")
MAX_RULES = 200
MAX_CONDITIONS = 20
BIN_DIGITS = 6  # the vault keeps the first six digits

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")
_DIGITS = re.compile(r"^[0-9]{1,6}$")

INT_OPS = ("eq", "gt", "gte", "lt", "lte", "between")
SET_OPS = ("eq", "ne", "in", "not_in")


class RuleError(ValueError):
    """A validation failure with the parameter it concerns and a stable code."""

    def __init__(self, message: str, *, param: str, code: str = "parameter_invalid"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True)
class PaymentFacts:
    """Everything a rule may look at for one payment."""

    amount: int
    currency: str
    brand: str = ""
    funding: str = ""
    bin: str = ""
    issuer_country: str = ""
    customer_country: str = ""
    payment_method_type: str = "card"
    metadata: dict = field(default_factory=dict)
    intent_id: str = ""

    def value(self, name: str) -> Any:
        if name.startswith("metadata."):
            return self.metadata.get(name[len("metadata.") :])
        return getattr(self, name)


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class IntRange:
    """amount in [lo, hi] (inclusive; None = open)."""

    field: str
    lo: int | None
    hi: int | None

    def matches(self, facts: PaymentFacts) -> bool:
        value = facts.value(self.field)
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def implies(self, other: Condition) -> bool:
        if not isinstance(other, IntRange) or other.field != self.field:
            return False
        lo_ok = other.lo is None or (self.lo is not None and self.lo >= other.lo)
        hi_ok = other.hi is None or (self.hi is not None and self.hi <= other.hi)
        return lo_ok and hi_ok

    def disjoint(self, other: Condition) -> bool:
        if not isinstance(other, IntRange) or other.field != self.field:
            return False
        lo = max(x for x in (self.lo, other.lo, -(2**63)) if x is not None)
        hi = min(x for x in (self.hi, other.hi, 2**63) if x is not None)
        return lo > hi


@dataclass(frozen=True)
class ValueSet:
    """field in values (or not in, with `negate`). A missing value is in no set."""

    field: str
    values: frozenset
    negate: bool = False

    def matches(self, facts: PaymentFacts) -> bool:
        value = facts.value(self.field)
        present = value is not None and value != "" and value in self.values
        return present != self.negate

    def implies(self, other: Condition) -> bool:
        if isinstance(other, Exists) and other.field == self.field:
            return other.present and not self.negate
        if not isinstance(other, ValueSet) or other.field != self.field:
            return False
        if not self.negate and not other.negate:
            return self.values <= other.values
        if not self.negate and other.negate:
            return not (self.values & other.values)
        if self.negate and other.negate:
            return other.values <= self.values
        return False

    def disjoint(self, other: Condition) -> bool:
        if not isinstance(other, ValueSet) or other.field != self.field:
            return False
        if not self.negate and not other.negate:
            return not (self.values & other.values)
        if not self.negate and other.negate:
            return self.values <= other.values
        if self.negate and not other.negate:
            return other.values <= self.values
        return False


@dataclass(frozen=True)
class Exists:
    """metadata key present (or absent)."""

    field: str
    present: bool

    def matches(self, facts: PaymentFacts) -> bool:
        value = facts.value(self.field)
        return (value is not None and value != "") == self.present

    def implies(self, other: Condition) -> bool:
        return (
            isinstance(other, Exists)
            and other.field == self.field
            and (other.present == self.present)
        )

    def disjoint(self, other: Condition) -> bool:
        if isinstance(other, Exists) and other.field == self.field:
            return other.present != self.present
        if isinstance(other, ValueSet) and other.field == self.field and not self.present:
            return not other.negate
        return False


@dataclass(frozen=True)
class BinRanges:
    """The card's six-digit BIN within any of the inclusive ranges (from prefixes or ranges)."""

    ranges: tuple[tuple[str, str], ...]
    field: str = "bin"

    def matches(self, facts: PaymentFacts) -> bool:
        card_bin = facts.bin
        if len(card_bin) != BIN_DIGITS:
            return False
        return any(lo <= card_bin <= hi for lo, hi in self.ranges)

    def implies(self, other: Condition) -> bool:
        if not isinstance(other, BinRanges):
            return False
        return all(
            any(olo <= lo and hi <= ohi for olo, ohi in other.ranges) for lo, hi in self.ranges
        )

    def disjoint(self, other: Condition) -> bool:
        if not isinstance(other, BinRanges):
            return False
        return not any(
            lo <= ohi and olo <= hi for lo, hi in self.ranges for olo, ohi in other.ranges
        )


Condition = IntRange | ValueSet | Exists | BinRanges


def _field_kind(name: str) -> str | None:
    if name.startswith("metadata."):
        return "metadata" if _METADATA_KEY.match(name[len("metadata.") :]) else None
    return {
        "amount": "int",
        "currency": "currency",
        "brand": "brand",
        "funding": "funding",
        "bin": "bin",
        "issuer_country": "country",
        "customer_country": "country",
        "payment_method_type": "payment_method_type",
    }.get(name)


FIELD_NAMES = (
    "amount",
    "currency",
    "brand",
    "funding",
    "bin",
    "issuer_country",
    "customer_country",
    "payment_method_type",
    "metadata.<key>",
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_int_condition(name: str, op: str, value: Any, param: str) -> Condition:
    if op not in INT_OPS:
        raise RuleError(
            f"Operator {op!r} does not apply to {name}; use one of {', '.join(INT_OPS)}.",
            param=f"{param}[op]",
            code="condition_operator_invalid",
        )
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)):
            raise RuleError(
                f"{name} between takes [min, max], two whole numbers of minor units.",
                param=f"{param}[value]",
                code="condition_value_invalid",
            )
        lo, hi = value
        if lo > hi:
            raise RuleError(
                f"Inverted range: min ({lo}) is greater than max ({hi}).",
                param=f"{param}[value]",
                code="condition_range_inverted",
            )
        if lo < 0:
            raise RuleError(
                f"{name} cannot be negative.",
                param=f"{param}[value]",
                code="condition_value_invalid",
            )
        return IntRange(name, lo, hi)
    if not _is_int(value) or value < 0:
        raise RuleError(
            f"{name} {op} takes a whole number of minor units >= 0.",
            param=f"{param}[value]",
            code="condition_value_invalid",
        )
    return {
        "eq": IntRange(name, value, value),
        "gt": IntRange(name, value + 1, None),
        "gte": IntRange(name, value, None),
        "lt": IntRange(name, None, value - 1),
        "lte": IntRange(name, None, value),
    }[op]


def _normalize_member(kind: str, item: Any, param: str) -> str:
    if not isinstance(item, str) or not item:
        raise RuleError(
            "Values must be non-empty strings.", param=param, code="condition_value_invalid"
        )
    if kind == "currency":
        try:
            if len(item) != 3 or iso4217.Currency(item.upper()) is None:
                raise ValueError
        except ValueError:
            raise RuleError(
                f"{item!r} is not an ISO 4217 currency code.",
                param=param,
                code="condition_value_invalid",
            ) from None
        return item.lower()
    if kind == "country":
        if not _COUNTRY.match(item.upper()):
            raise RuleError(
                f"{item!r} is not a two-letter ISO 3166 country code.",
                param=param,
                code="condition_value_invalid",
            )
        return item.upper()
    allowed = {"brand": BRANDS, "funding": FUNDINGS, "payment_method_type": PAYMENT_METHOD_TYPES}
    if kind in allowed:
        if item.lower() not in allowed[kind]:
            raise RuleError(
                f"{item!r} is not one of {', '.join(allowed[kind])}.",
                param=param,
                code="condition_value_invalid",
            )
        return item.lower()
    if len(item) > 500:
        raise RuleError("Values are at most 500 characters.", param=param)
    return item  # metadata values: exact strings


def _parse_set_condition(name: str, kind: str, op: str, value: Any, param: str) -> Condition:
    ops = (*SET_OPS, "exists") if kind == "metadata" else SET_OPS
    if op not in ops:
        raise RuleError(
            f"Operator {op!r} does not apply to {name}; use one of {', '.join(ops)}.",
            param=f"{param}[op]",
            code="condition_operator_invalid",
        )
    if op == "exists":
        if not isinstance(value, bool):
            raise RuleError(
                "exists takes true or false.",
                param=f"{param}[value]",
                code="condition_value_invalid",
            )
        return Exists(name, value)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError(
                f"{op} takes a non-empty list.",
                param=f"{param}[value]",
                code="condition_value_invalid",
            )
        members = [
            _normalize_member(kind, item, f"{param}[value][{i}]") for i, item in enumerate(value)
        ]
    else:
        members = [_normalize_member(kind, value, f"{param}[value]")]
    return ValueSet(name, frozenset(members), negate=op in ("ne", "not_in"))


def _parse_bin_condition(op: str, value: Any, param: str) -> Condition:
    if op not in ("prefix", "range"):
        raise RuleError(
            f"Operator {op!r} does not apply to bin; use prefix or range.",
            param=f"{param}[op]",
            code="condition_operator_invalid",
        )
    if op == "prefix":
        prefixes = value if isinstance(value, list) else [value]
        if not prefixes:
            raise RuleError(
                "prefix takes a digit string or a non-empty list of them.",
                param=f"{param}[value]",
                code="condition_value_invalid",
            )
        ranges = []
        for i, prefix in enumerate(prefixes):
            where = f"{param}[value][{i}]" if isinstance(value, list) else f"{param}[value]"
            if not isinstance(prefix, str) or not _DIGITS.match(prefix):
                raise RuleError(
                    "A BIN prefix is 1 to 6 digits, as a string.",
                    param=where,
                    code="condition_value_invalid",
                )
            pad = BIN_DIGITS - len(prefix)
            ranges.append((prefix + "0" * pad, prefix + "9" * pad))
        return BinRanges(tuple(ranges))
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, str) and _DIGITS.match(v) for v in value)
        and len(value[0]) == len(value[1])
    ):
        raise RuleError(
            'A BIN range is ["from", "to"]: two digit strings of the same length (1 to 6).',
            param=f"{param}[value]",
            code="condition_value_invalid",
        )
    lo, hi = value
    if lo > hi:
        raise RuleError(
            f"Inverted range: {lo!r} is greater than {hi!r}.",
            param=f"{param}[value]",
            code="condition_range_inverted",
        )
    pad = BIN_DIGITS - len(lo)
    return BinRanges(((lo + "0" * pad, hi + "9" * pad),))


def parse_condition(raw: Any, param: str) -> Condition:
    if not isinstance(raw, dict):
        raise RuleError(
            'A condition is an object: {"field", "op", "value"}.',
            param=param,
            code="condition_invalid",
        )
    unknown = sorted(set(raw) - {"field", "op", "value"})
    if unknown:
        raise RuleError(
            f"Unknown key {unknown[0]!r} in a condition.",
            param=f"{param}[{unknown[0]}]",
            code="parameter_unknown",
        )
    for key in ("field", "op", "value"):
        if key not in raw:
            raise RuleError(
                f"A condition needs {key!r}.", param=f"{param}[{key}]", code="parameter_missing"
            )
    name, op, value = raw["field"], raw["op"], raw["value"]
    kind = _field_kind(name) if isinstance(name, str) else None
    if kind is None:
        raise RuleError(
            f"Unknown condition field {name!r}; use one of {', '.join(FIELD_NAMES)}.",
            param=f"{param}[field]",
            code="condition_field_unknown",
        )
    if not isinstance(op, str):
        raise RuleError(
            "op must be a string.", param=f"{param}[op]", code="condition_operator_invalid"
        )
    if kind == "int":
        return _parse_int_condition(name, op, value, param)
    if kind == "bin":
        return _parse_bin_condition(op, value, param)
    return _parse_set_condition(name, kind, op, value, param)


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class StrategySpec:
    type: str
    connectors: tuple[str, ...]  # public ids, in the order given (ties break by it)
    weights: tuple[int, ...] = ()  # weighted: per connector, summing to 100
    exploration: float = 0.0  # success_rate / lowest_latency: share of explored decisions
    segment: str = "brand_currency"  # success_rate
    window: int = 100  # success_rate: most recent outcomes per connector and segment
    min_samples: int = 10  # below this, a segment falls back to the connector, then a prior

    def as_dict(self) -> dict:
        body: dict[str, Any] = {"type": self.type}
        if self.type == "weighted":
            body["weights"] = [
                {"connector": c, "weight": w}
                for c, w in zip(self.connectors, self.weights, strict=True)
            ]
        else:
            body["connectors"] = list(self.connectors)
        if self.type in ("success_rate", "lowest_latency"):
            body["exploration"] = self.exploration
            body["min_samples"] = self.min_samples
        if self.type == "success_rate":
            body["segment"] = self.segment
            body["window"] = self.window
        return body


_STRATEGY_KEYS = {
    "priority": {"type", "connectors"},
    "weighted": {"type", "weights"},
    "least_cost": {"type", "connectors"},
    "success_rate": {"type", "connectors", "exploration", "segment", "window", "min_samples"},
    "lowest_latency": {"type", "connectors", "exploration", "min_samples"},
}


def _connector_ref(value: Any, param: str, connectors: dict[str, dict]) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError("A connector is named by its id (mca_…).", param=param)
    info = connectors.get(value)
    if info is None:
        raise RuleError(f"No such connector: {value!r}.", param=param, code="connector_unknown")
    if not info.get("enabled", True):
        raise RuleError(
            f"Connector {value!r} is disabled; enable it or leave it out.",
            param=param,
            code="connector_disabled",
        )
    return value


def _connector_list(raw: Any, param: str, connectors: dict[str, dict]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise RuleError(
            "connectors must be a non-empty list of connector ids.",
            param=param,
            code="parameter_missing" if not raw else "parameter_invalid",
        )
    seen: list[str] = []
    for i, value in enumerate(raw):
        ref = _connector_ref(value, f"{param}[{i}]", connectors)
        if ref in seen:
            raise RuleError(
                f"Connector {ref!r} is listed twice.",
                param=f"{param}[{i}]",
                code="connector_duplicate",
            )
        seen.append(ref)
    return tuple(seen)


def _number(raw: dict, key: str, param: str, *, lo: float, hi: float, default, integer: bool):
    if key not in raw:
        return default
    value = raw[key]
    ok = (
        _is_int(value)
        if integer
        else (isinstance(value, (int, float)) and not isinstance(value, bool))
    )
    if not ok or not lo <= value <= hi:
        kind = "a whole number" if integer else "a number"
        raise RuleError(f"{key} must be {kind} from {lo} to {hi}.", param=f"{param}[{key}]")
    return value


def parse_strategy(raw: Any, param: str, connectors: dict[str, dict]) -> StrategySpec:
    if not isinstance(raw, dict):
        raise RuleError(
            'A strategy is an object: {"type", ...}.', param=param, code="strategy_invalid"
        )
    kind = raw.get("type")
    if kind not in STRATEGIES:
        raise RuleError(
            f"Unknown strategy {kind!r}; use one of {', '.join(STRATEGIES)}.",
            param=f"{param}[type]",
            code="strategy_invalid",
        )
    unknown = sorted(set(raw) - _STRATEGY_KEYS[kind])
    if unknown:
        raise RuleError(
            f"Unknown key {unknown[0]!r} for a {kind} strategy.",
            param=f"{param}[{unknown[0]}]",
            code="parameter_unknown",
        )
    if kind == "weighted":
        weights = raw.get("weights")
        if not isinstance(weights, list) or len(weights) < 1:
            raise RuleError(
                'weights must be a non-empty list of {"connector", "weight"}.',
                param=f"{param}[weights]",
                code="parameter_missing" if not weights else "weights_invalid",
            )
        ids, values = [], []
        for i, item in enumerate(weights):
            where = f"{param}[weights][{i}]"
            if not isinstance(item, dict) or set(item) != {"connector", "weight"}:
                raise RuleError(
                    'Each weight is {"connector": "mca_…", "weight": <1-100>}.',
                    param=where,
                    code="weights_invalid",
                )
            ref = _connector_ref(item["connector"], f"{where}[connector]", connectors)
            if ref in ids:
                raise RuleError(
                    f"Connector {ref!r} is listed twice.",
                    param=f"{where}[connector]",
                    code="connector_duplicate",
                )
            weight = item["weight"]
            if not _is_int(weight) or weight <= 0:
                raise RuleError(
                    "A weight is a whole number greater than 0 (percent).",
                    param=f"{where}[weight]",
                    code="weights_invalid",
                )
            ids.append(ref)
            values.append(weight)
        if sum(values) != 100:
            raise RuleError(
                f"Weights must add up to 100; these add up to {sum(values)}.",
                param=f"{param}[weights]",
                code="weights_invalid",
            )
        return StrategySpec(type=kind, connectors=tuple(ids), weights=tuple(values))
    ids = _connector_list(raw.get("connectors"), f"{param}[connectors]", connectors)
    if kind in ("priority", "least_cost"):
        return StrategySpec(type=kind, connectors=ids)
    exploration = _number(raw, "exploration", param, lo=0.0, hi=0.5, default=0.05, integer=False)
    min_samples = _number(
        raw, "min_samples", param, lo=1, hi=HEALTH_WINDOW_MAX, default=10, integer=True
    )
    if kind == "lowest_latency":
        return StrategySpec(
            type=kind, connectors=ids, exploration=float(exploration), min_samples=min_samples
        )
    segment = raw.get("segment", "brand_currency")
    if segment not in SEGMENTS:
        raise RuleError(
            f"Unknown segment {segment!r}; use one of {', '.join(SEGMENTS)}.",
            param=f"{param}[segment]",
        )
    window = _number(raw, "window", param, lo=5, hi=HEALTH_WINDOW_MAX, default=100, integer=True)
    if min_samples > window:
        raise RuleError("min_samples cannot exceed window.", param=f"{param}[min_samples]")
    return StrategySpec(
        type=kind,
        connectors=ids,
        exploration=float(exploration),
        segment=segment,
        window=window,
        min_samples=min_samples,
    )


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    index: int
    name: str
    match: str  # all | any
    conditions: tuple[Condition, ...]
    strategy: StrategySpec
    predicate: Callable[[PaymentFacts], bool] = field(compare=False, repr=False)

    def as_dict(self, raw_conditions: list) -> dict:
        return {
            "name": self.name,
            "match": self.match,
            "conditions": raw_conditions,
            "strategy": self.strategy.as_dict(),
        }

    def alternatives(self) -> list[tuple[Condition, ...]]:
        """The rule as a disjunction of conjunctions (for the reachability check)."""
        if self.match == "all":
            return [self.conditions]
        return [(c,) for c in self.conditions]

    def covers(self, later: Rule) -> bool:
        """True when this rule matches everything `later` could match (so `later` never runs).
        Conservative: only provable cases."""
        if not self.conditions:
            return True
        for alternative in later.alternatives():
            if not alternative:
                return False  # later matches everything; this one does not
            implied = [any(c.implies(mine) for c in alternative) for mine in self.conditions]
            if not (all(implied) if self.match == "all" else any(implied)):
                return False
        return True

    def never_matches(self) -> bool:
        if self.match != "all":
            return False
        return any(
            a.disjoint(b) for i, a in enumerate(self.conditions) for b in self.conditions[i + 1 :]
        )


def _predicate(match: str, conditions: tuple[Condition, ...]) -> Callable[[PaymentFacts], bool]:
    checks = tuple(c.matches for c in conditions)
    if not checks:
        return lambda facts: True
    if match == "all":
        return lambda facts: all(check(facts) for check in checks)
    return lambda facts: any(check(facts) for check in checks)


def parse_rule(raw: Any, index: int, connectors: dict[str, dict]) -> tuple[Rule, dict]:
    param = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise RuleError(
            'A rule is an object: {"name", "match", "conditions", "strategy"}.',
            param=param,
            code="rule_invalid",
        )
    unknown = sorted(set(raw) - {"name", "match", "conditions", "strategy"})
    if unknown:
        raise RuleError(
            f"Unknown key {unknown[0]!r} in a rule.",
            param=f"{param}[{unknown[0]}]",
            code="parameter_unknown",
        )
    name = raw.get("name", f"rule {index + 1}")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise RuleError("name must be 1 to 100 characters.", param=f"{param}[name]")
    match = raw.get("match", "all")
    if match not in ("all", "any"):
        raise RuleError('match must be "all" or "any".', param=f"{param}[match]")
    raw_conditions = raw.get("conditions", [])
    if not isinstance(raw_conditions, list):
        raise RuleError(
            "conditions must be a list (empty: the rule matches every payment).",
            param=f"{param}[conditions]",
        )
    if len(raw_conditions) > MAX_CONDITIONS:
        raise RuleError(
            f"At most {MAX_CONDITIONS} conditions per rule.", param=f"{param}[conditions]"
        )
    conditions = tuple(
        parse_condition(c, f"{param}[conditions][{i}]") for i, c in enumerate(raw_conditions)
    )
    if "strategy" not in raw:
        raise RuleError(
            "A rule needs a strategy.", param=f"{param}[strategy]", code="parameter_missing"
        )
    strategy = parse_strategy(raw["strategy"], f"{param}[strategy]", connectors)
    rule = Rule(
        index=index,
        name=name,
        match=match,
        conditions=conditions,
        strategy=strategy,
        predicate=_predicate(match, conditions),
    )
    return rule, rule.as_dict(raw_conditions)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    fallback: tuple[str, ...]
    definition: dict  # the normalized JSON that is stored
    matcher: Callable[[PaymentFacts], int] = field(compare=False, repr=False, default=None)

    def first_match(self, facts: PaymentFacts) -> Rule | None:
        if self.matcher is not None:
            index = self.matcher(facts)
            return self.rules[index] if index >= 0 else None
        return self.first_match_reference(facts)

    def first_match_reference(self, facts: PaymentFacts) -> Rule | None:
        """The same answer as the compiled matcher, one predicate at a time (tests compare)."""
        for rule in self.rules:
            if rule.predicate(facts):
                return rule
        return None

    def connector_ids(self) -> set[str]:
        ids = set(self.fallback)
        for rule in self.rules:
            ids.update(rule.strategy.connectors)
        return ids


# --------------------------------------------------------------------------- compilation

_FIELD_VARS = {
    "amount": "amount",
    "currency": "currency",
    "brand": "brand",
    "funding": "funding",
    "bin": "bin_",
    "issuer_country": "issuer_country",
    "customer_country": "customer_country",
    "payment_method_type": "payment_method_type",
}
_PROLOGUE = (
    "def _first_match(f):\n"
    "    amount = f.amount; currency = f.currency; brand = f.brand; funding = f.funding\n"
    "    bin_ = f.bin; issuer_country = f.issuer_country\n"
    "    customer_country = f.customer_country; payment_method_type = f.payment_method_type\n"
    "    md = f.metadata\n"
)


def _condition_source(condition: Condition, const: Callable[[Any], str]) -> str:
    if isinstance(condition, BinRanges):
        spans = " or ".join(f"{const(lo)} <= bin_ <= {const(hi)}" for lo, hi in condition.ranges)
        return f"(len(bin_) == {BIN_DIGITS} and ({spans}))"
    name = condition.field
    if name.startswith("metadata."):
        subject = f"md.get({const(name[len('metadata.') :])})"
    else:
        subject = _FIELD_VARS[name]
    if isinstance(condition, IntRange):
        parts = []
        if condition.lo is not None:
            parts.append(f"{subject} >= {const(condition.lo)}")
        if condition.hi is not None:
            parts.append(f"{subject} <= {const(condition.hi)}")
        return "(" + " and ".join(parts or ["True"]) + ")"
    if isinstance(condition, ValueSet):
        # a missing value (None, "") is in no validated set, so `not in` matches it
        return f"({subject} {'not in' if condition.negate else 'in'} {const(condition.values)})"
    if isinstance(condition, Exists):
        return f"({subject} {'not in' if condition.present else 'in'} (None, ''))"
    raise TypeError(condition)


def compile_matcher(rules: tuple[Rule, ...]) -> Callable[[PaymentFacts], int]:
    """One generated function for the whole rule list: straight-line `if`s over local
    variables, the first matching rule's index or -1. Every value is a bound constant, never
    source text, so nothing a merchant sends can become code."""
    consts: dict[str, Any] = {}

    def const(value: Any) -> str:
        name = f"_k{len(consts)}"
        consts[name] = value
        return name

    lines = [_PROLOGUE]
    for rule in rules:
        parts = [_condition_source(c, const) for c in rule.conditions]
        joiner = " and " if rule.match == "all" else " or "
        test = joiner.join(parts) if parts else "True"
        lines.append(f"    if {test}:\n        return {int(rule.index)}\n")
    lines.append("    return -1\n")
    namespace: dict[str, Any] = {"__builtins__": {"len": len, "True": True}, **consts}
    code = compile("".join(lines), "<routing rules>", "exec")
    exec(code, namespace)  # noqa: S102  (generated from validated rule objects, see above)
    return namespace["_first_match"]


def parse_rule_set(
    rules: Any, fallback: Any, connectors: dict[str, dict], *, check_reachability: bool = True
) -> RuleSet:
    """Validates a whole version. `connectors`: public id -> {"enabled": bool} for the
    merchant's connectors in this mode (anything else is unknown)."""
    if not isinstance(rules, list):
        raise RuleError("rules must be a list of rules.", param="rules")
    if not rules:
        raise RuleError(
            "A profile needs at least one rule (a rule without conditions matches every payment).",
            param="rules",
            code="rules_empty",
        )
    if len(rules) > MAX_RULES:
        raise RuleError(f"At most {MAX_RULES} rules.", param="rules")
    parsed, stored = [], []
    for index, raw in enumerate(rules):
        rule, normalized = parse_rule(raw, index, connectors)
        if check_reachability and rule.never_matches():
            raise RuleError(
                f"Rule {index} ({rule.name!r}) can never match: its conditions contradict each "
                "other.",
                param=f"rules[{index}][conditions]",
                code="rule_unreachable",
            )
        for earlier in parsed if check_reachability else ():
            if earlier.covers(rule):
                raise RuleError(
                    f"Rule {index} ({rule.name!r}) is unreachable: rule {earlier.index} "
                    f"({earlier.name!r}) matches every payment it would.",
                    param=f"rules[{index}]",
                    code="rule_unreachable",
                )
        parsed.append(rule)
        stored.append(normalized)
    if fallback is None:
        fallback = []
    if not isinstance(fallback, list):
        raise RuleError("fallback must be a list of connector ids.", param="fallback")
    fallback_ids = _connector_list(fallback, "fallback", connectors) if fallback else ()
    return RuleSet(
        rules=tuple(parsed),
        fallback=fallback_ids,
        definition={"rules": stored, "fallback": list(fallback_ids)},
        matcher=compile_matcher(tuple(parsed)),
    )


def compile_stored(rules: list, fallback: list) -> RuleSet:
    """Compiles a stored (already validated) version without checking connector state: a
    connector disabled since is skipped at routing time, with its reason in the trace."""
    # validated when stored: the quadratic reachability check need not run again
    return parse_rule_set(rules, fallback, _Anything(), check_reachability=False)


class _Anything(dict):
    def get(self, key, default=None):
        return {"enabled": True}
