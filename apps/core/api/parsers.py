"""The API's JSON parser: DRF's, with the limits a hostile body must not get past.

- Nesting deeper than MAX_JSON_DEPTH is refused (400 `body_too_deep`): no request of ours
  nests more than a few levels, and past about a thousand levels the C scanner itself would
  raise RecursionError. A body with fewer brackets than the limit cannot be too deep, so only
  the others are measured, by an iterative walk after `json.loads`.
- NUL (U+0000) and lone surrogates (U+D800-U+DFFF) in any string, key or value, are refused:
  PostgreSQL's text and jsonb cannot store NUL, and a lone surrogate cannot be encoded as UTF-8,
  so either would otherwise fail deep in a service (400 `parameter_invalid_character`).
- NaN and Infinity are not JSON (400 `body_malformed_json`).
"""

from __future__ import annotations

import codecs
import json
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from apps.core.errors import InvalidRequestError

MAX_JSON_DEPTH = 32

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# only these escapes can produce an unstorable character; a body without them skips the walk
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def json_depth_exceeds(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when a parsed document nests arrays/objects deeper than `limit` (iterative)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return False


def find_unstorable_character(value) -> tuple[bool, str | None]:
    """Whether a string or key holds NUL or a lone surrogate, and where: the bracketed
    parameter path (`metadata[note]`; the enclosing object's for a key; None at the top)."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:  # iterative: a wide document must not cost recursion
        node, where = stack.pop()
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                return True, where or None
        elif isinstance(node, dict):
            for key, child in node.items():
                if _UNSTORABLE.search(key):
                    return True, where or None
                stack.append((child, f"{where}[{key}]" if where else key))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(node))
    return False, None


class ApiJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise _too_deep() from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth_exceeds(data):
            raise _too_deep()
        if _UNSTORABLE_ESCAPE.search(text):
            found, param = find_unstorable_character(data)
            if found:
                raise InvalidRequestError(
                    "Strings in the request may not contain the NUL character (\\u0000) or "
                    "unpaired surrogates (\\ud800-\\udfff).",
                    code="parameter_invalid_character",
                    param=param,
                )
        return data


def _too_deep() -> InvalidRequestError:
    return InvalidRequestError(
        f"The request body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels.",
        code="body_too_deep",
    )


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
