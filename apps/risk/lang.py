"""The rule language, in the spirit of Stripe Radar's, parsed and type-checked when a rule is
saved and compiled to a Python closure evaluated in process (docs/risk.md).

    predicate  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" predicate ")" | comparison
    comparison := operand OP operand | operand ["not"] "in" @list | :bool_attribute:
    operand    := :attribute: | ::metadata_key:: | number | 'string'
    OP         := = | == | != | < | <= | > | >=

Strings compare case-insensitively (Radar's default); numbers are integers (amounts in minor
units). A comparison between a string and a number, an unknown attribute or an unknown list is
refused at save time with its own error code."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

NUMBER, STRING, BOOL = "number", "string", "bool"
WINDOWS = ("minutely", "hourly", "daily")

_BASE_ATTRIBUTES: dict[str, str] = {
    "amount": NUMBER,
    "currency": STRING,
    "risk_score": NUMBER,
    "risk_level": STRING,
    "card_fingerprint": STRING,
    "card_bin": STRING,
    "card_brand": STRING,
    "card_funding": STRING,
    "card_country": STRING,
    "email": STRING,
    "email_domain": STRING,
    "ip_address": STRING,
    "ip_country": STRING,
    "customer": STRING,
    "merchant_country": STRING,
    "is_eea_card": BOOL,
    "is_customer_initiated": BOOL,
}
# velocity counters (apps/risk/velocity.py): <counter>_<window>
VELOCITY_COUNTERS = (
    "charges_per_card",
    "declines_per_card",
    "charges_per_email",
    "declines_per_email",
    "charges_per_ip",
    "declines_per_ip",
    "charges_per_customer",
    "declines_per_customer",
    "cards_per_email",
    "cards_per_ip",
    "amount_per_card",
)
ATTRIBUTES: dict[str, str] = {
    **_BASE_ATTRIBUTES,
    **{f"{c}_{w}": NUMBER for c in VELOCITY_COUNTERS for w in WINDOWS},
}
# which list item types an attribute may be looked up in
LIST_TYPES: dict[str, set[str]] = {
    "card_fingerprint": {"card_fingerprint", "string"},
    "card_bin": {"card_bin", "string"},
    "email": {"email", "string"},
    "email_domain": {"email_domain", "string"},
    "ip_address": {"ip_address", "string"},
    "ip_country": {"country", "string"},
    "card_country": {"country", "string"},
    "merchant_country": {"country", "string"},
}
_ANY_STRING_LIST = {"string"}


class RuleSyntaxError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<meta>::[A-Za-z0-9_\-.]{1,40}::)
    | (?P<attr>:[a-z0-9_]+:)
    | (?P<list>@[A-Za-z0-9_]{1,100})
    | (?P<num>-?\d+)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op><=|>=|!=|==|=|<|>)
    | (?P<paren>[()])
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise RuleSyntaxError(
                "rule_syntax_invalid",
                f"The rule could not be parsed near {text[pos : pos + 20]!r}.",
            )
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


@dataclass(frozen=True)
class Operand:
    kind: str  # attr | meta | num | str
    value: object
    type: str


@dataclass(frozen=True)
class Parsed:
    action: str | None
    tree: tuple
    attributes: frozenset[str]
    lists: frozenset[str]


class _Parser:
    def __init__(self, tokens, lists: dict[str, str] | None):
        self.t = tokens
        self.i = 0
        self.lists = lists  # alias -> item_type; None: do not check
        self.attrs: set[str] = set()
        self.used_lists: set[str] = set()

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else (None, None)

    def word(self, w: str, k=0) -> bool:
        kind, val = self.peek(k)
        return kind == "word" and val.lower() == w

    def take(self):
        tok = self.peek()
        if tok[0] is None:
            raise RuleSyntaxError("rule_syntax_invalid", "The rule ends too early.")
        self.i += 1
        return tok

    def parse(self):
        tree = self.or_()
        if self.i != len(self.t):
            raise RuleSyntaxError(
                "rule_syntax_invalid", f"Unexpected {self.peek()[1]!r} in the rule."
            )
        return tree

    def or_(self):
        parts = [self.and_()]
        while self.word("or"):
            self.i += 1
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else ("or", tuple(parts))

    def and_(self):
        parts = [self.not_()]
        while self.word("and"):
            self.i += 1
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else ("and", tuple(parts))

    def not_(self):
        if self.word("not"):
            self.i += 1
            return ("not", self.not_())
        if self.peek() == ("paren", "("):
            self.i += 1
            inner = self.or_()
            if self.take() != ("paren", ")"):
                raise RuleSyntaxError("rule_syntax_invalid", "A parenthesis is not closed.")
            return inner
        return self.comparison()

    def operand(self) -> Operand:
        kind, val = self.take()
        if kind == "attr":
            name = val.strip(":")
            if name not in ATTRIBUTES:
                raise RuleSyntaxError(
                    "rule_attribute_unknown", f"Unknown attribute :{name}: in the rule."
                )
            self.attrs.add(name)
            return Operand("attr", name, ATTRIBUTES[name])
        if kind == "meta":
            return Operand("meta", val.strip(":"), STRING)
        if kind == "num":
            return Operand("num", int(val), NUMBER)
        if kind == "str":
            raw = val[1:-1]
            return Operand("str", re.sub(r"\\(.)", r"\1", raw), STRING)
        raise RuleSyntaxError("rule_syntax_invalid", f"Expected a value, found {val!r}.")

    def comparison(self):
        left = self.operand()
        negate = False
        if self.word("not") and self.word("in", 1):
            self.i += 1
            negate = True
        if self.word("in"):
            self.i += 1
            kind, val = self.take()
            if kind != "list":
                raise RuleSyntaxError("rule_syntax_invalid", "`in` takes a list: @alias.")
            alias = val[1:]
            if left.type != STRING:
                raise RuleSyntaxError(
                    "rule_type_mismatch", f"Only a string can be looked up in @{alias}."
                )
            if self.lists is not None:
                if alias not in self.lists:
                    raise RuleSyntaxError("rule_list_unknown", f"There is no list @{alias}.")
                item_type = self.lists[alias]
                allowed = (
                    LIST_TYPES.get(left.value, _ANY_STRING_LIST)
                    if left.kind == "attr"
                    else (_ANY_STRING_LIST)
                )
                if item_type not in allowed:
                    raise RuleSyntaxError(
                        "rule_list_type_mismatch",
                        f"@{alias} holds {item_type} items; :{left.value}: cannot be in it.",
                    )
            self.used_lists.add(alias)
            node = ("in", left, alias)
            return ("not", node) if negate else node
        kind, val = self.peek()
        if kind != "op":
            if left.type == BOOL:
                return ("bool", left)
            raise RuleSyntaxError(
                "rule_syntax_invalid", "Expected a comparison (=, !=, <, <=, >, >=, in)."
            )
        self.i += 1
        right = self.operand()
        op = "==" if val == "=" else val
        if left.type != right.type:
            raise RuleSyntaxError(
                "rule_type_mismatch",
                f"Cannot compare a {left.type} with a {right.type} ({_show(left)} {val} "
                f"{_show(right)}).",
            )
        if left.type in (STRING, BOOL) and op not in ("==", "!="):
            raise RuleSyntaxError(
                "rule_type_mismatch", f"Strings compare only with = or != (not {val})."
            )
        return ("cmp", op, left, right)


def _show(o: Operand) -> str:
    return {"attr": f":{o.value}:", "meta": f"::{o.value}::", "str": f"'{o.value}'"}.get(
        o.kind, str(o.value)
    )


ACTIONS = ("request_3ds", "allow", "block", "review")


def parse(text: str, *, lists: dict[str, str] | None = None) -> Parsed:
    """`text`: a predicate, or a whole rule (`block if …`). `lists`: alias -> item type of
    the lists the rule may name (None: not checked)."""
    if not text or not text.strip():
        raise RuleSyntaxError("rule_syntax_invalid", "The predicate is empty.")
    tokens = _tokens(text)
    action = None
    if len(tokens) >= 2 and tokens[0][0] == "word" and tokens[1] == ("word", "if"):
        action = tokens[0][1].lower()
        if action not in ACTIONS:
            raise RuleSyntaxError("rule_action_invalid", f"Unknown action {tokens[0][1]!r}.")
        tokens = tokens[2:]
    parser = _Parser(tokens, lists)
    tree = parser.parse()
    return Parsed(action, tree, frozenset(parser.attrs), frozenset(parser.used_lists))


Signals = dict  # attribute name -> value; "metadata" -> dict
Predicate = Callable[[dict, dict], bool]  # (signals, lists alias -> frozenset) -> bool


def _getter(o: Operand):
    if o.kind == "attr":
        name = o.value
        if o.type == STRING:
            return lambda s: (s.get(name) or "").lower()
        if o.type == NUMBER:
            return lambda s: s.get(name) or 0
        return lambda s: bool(s.get(name))
    if o.kind == "meta":
        key = o.value
        return lambda s: str((s.get("metadata") or {}).get(key, "")).lower()
    value = o.value.lower() if o.kind == "str" else o.value
    return lambda s: value


_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compile_tree(tree) -> Predicate:
    kind = tree[0]
    if kind == "and":
        parts = [compile_tree(p) for p in tree[1]]
        return lambda s, ls: all(p(s, ls) for p in parts)
    if kind == "or":
        parts = [compile_tree(p) for p in tree[1]]
        return lambda s, ls: any(p(s, ls) for p in parts)
    if kind == "not":
        inner = compile_tree(tree[1])
        return lambda s, ls: not inner(s, ls)
    if kind == "bool":
        get = _getter(tree[1])
        return lambda s, ls: get(s)
    if kind == "in":
        get, alias = _getter(tree[1]), tree[2]
        empty: frozenset = frozenset()
        return lambda s, ls: get(s) in ls.get(alias, empty)
    _, op, left, right = tree
    fn, gl, gr = _OPS[op], _getter(left), _getter(right)
    if left.type == STRING and (left.kind == "attr" and right.kind == "attr"):
        # Radar: a comparison with an unknown value (no IP country) does not match
        return lambda s, ls: (a := gl(s)) != "" and (b := gr(s)) != "" and fn(a, b)
    return lambda s, ls: fn(gl(s), gr(s))


def compile_predicate(text: str) -> Predicate:
    return compile_tree(parse(text).tree)
