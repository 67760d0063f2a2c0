"""Parse the ``args`` / ``hosts`` mappings that older scripts send as Python-literal strings.

Older scripts post ``"args": str({'TAG': 'v1'})`` and ``"hosts": str({1: '10.0.0.1'})``
(seed 000), so a string field may hold either JSON or a Python ``dict`` literal. Python literals are
parsed with :func:`ast.parse` and checked node by node *before* :func:`ast.literal_eval` sees them:
only ``Dict``, ``List``, ``Tuple``, ``Constant`` (str/int/float/bool/None) and unary minus on a
number are allowed. Nothing is ever evaluated; size limits bound the work done on hostile input.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from typing import Any, TypeAlias

from quayside.errors import InputError

Scalar: TypeAlias = str | int | float | bool | None
Value: TypeAlias = Scalar | list[Scalar]
Mapping_: TypeAlias = dict[str | int, Value]

MAX_TEXT_CHARS = 16_384
"""Longest string accepted before any parsing is attempted."""
MAX_ENTRIES = 256
"""Most keys in the mapping."""
MAX_LIST_ITEMS = 256
"""Most items in one list value."""
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 4_096
MAX_NODES = 8_192
"""Most syntax-tree nodes walked (the text limit already bounds this; belt and braces)."""
MAX_DEPTH = 2
"""Containers nest at most this deep: the mapping itself (1) and lists inside it (2)."""

ACCEPTED = (
    "a JSON object or a Python dict literal such as {'TAG': 'v1'} or {1: '172.16.0.101'}: "
    f"keys are strings or integers, values are strings, numbers, true/false/null or lists of "
    f"those; at most {MAX_ENTRIES} entries and {MAX_TEXT_CHARS} characters"
)

_ALLOWED_CONSTANTS = (str, int, float, bool, type(None))


class _Reject(Exception):
    """Internal: the input is not acceptable; the message says why."""


def parse_mapping(value: object, field: str) -> Mapping_:
    """Parse a mapping given as a dict, a JSON object string or a Python dict literal string.

    A blank string or ``None`` is an empty mapping (old scripts send ``""`` for "no hosts").

    Args:
        value: what the client sent: a ``dict``, a ``str`` or ``None``.
        field: the field name, used in error messages (``args``, ``hosts``...).

    Returns:
        A new ``dict`` with ``str``/``int`` keys and scalar or list-of-scalar values
        (tuples become lists).

    Raises:
        InputError: the value is not one of the accepted forms, contains anything but plain
            literals (calls, names, attributes, lambdas, f-strings, operators...), or exceeds
            the size limits. The message names ``field`` and what is accepted; the input
            itself is not echoed.
    """
    try:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return _check_mapping(value)
        if isinstance(value, str):
            return _check_mapping(_parse_text(value))
        raise _Reject(f"got {type(value).__name__}")
    except _Reject as e:
        raise InputError(f"{field}: {e}; expected {ACCEPTED}") from None


def _parse_text(text: str) -> Any:
    if len(text) > MAX_TEXT_CHARS:
        raise _Reject(f"text is {len(text)} characters long")
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped[0] != "{":
        raise _Reject("text does not start with '{'")
    try:
        return json.loads(stripped, object_pairs_hook=_no_duplicate_pairs, parse_constant=_no_nan)
    except _Reject:
        raise
    except (ValueError, RecursionError):
        pass  # not JSON: try a Python literal below
    try:
        tree = ast.parse(stripped, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise _Reject("text is neither JSON nor a Python literal") from None
    _check_tree(tree)
    try:
        return ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise _Reject("text is not a plain literal") from None


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise _Reject(f"duplicate key {key[:MAX_KEY_CHARS]!r}")
        result[key] = item
    return result


def _no_nan(name: str) -> Any:
    raise _Reject(f"{name} is not a number")


def _check_tree(tree: ast.Expression) -> None:
    """Walk the whole tree (iteratively) and reject any node that is not a plain literal."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise _Reject("too many elements")
        if isinstance(node, ast.Dict):
            if depth > 1:
                raise _Reject("mappings inside values are not accepted")
            if len(node.keys) > MAX_ENTRIES:
                raise _Reject(f"more than {MAX_ENTRIES} entries")
            seen: set[object] = set()
            for key, item in zip(node.keys, node.values, strict=True):
                if key is None:
                    raise _Reject("'**' unpacking is not accepted")
                if not isinstance(key, ast.Constant):
                    raise _Reject("keys must be plain strings or integers")
                marker = (type(key.value), key.value)
                if marker in seen:
                    raise _Reject(f"duplicate key {str(key.value)[:MAX_KEY_CHARS]!r}")
                seen.add(marker)
                stack.append((key, depth))
                stack.append((item, depth + 1))
        elif isinstance(node, ast.List | ast.Tuple):
            if depth > MAX_DEPTH:
                raise _Reject(f"containers nest deeper than {MAX_DEPTH} levels")
            if len(node.elts) > MAX_LIST_ITEMS:
                raise _Reject(f"a list has more than {MAX_LIST_ITEMS} items")
            stack.extend((elt, depth + 1) for elt in node.elts)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, _ALLOWED_CONSTANTS):
                raise _Reject(f"{type(node.value).__name__} values are not accepted")
        elif isinstance(node, ast.UnaryOp):
            if not (
                isinstance(node.op, ast.USub)
                and isinstance(node.operand, ast.Constant)
                and type(node.operand.value) in (int, float)
            ):
                raise _Reject("only '-' before a number is accepted as an operator")
        else:
            raise _Reject(f"{type(node).__name__} expressions are not accepted")


def _check_mapping(data: object) -> Mapping_:
    if not isinstance(data, Mapping):
        raise _Reject(f"the top level is a {type(data).__name__}, not a mapping")
    if len(data) > MAX_ENTRIES:
        raise _Reject(f"more than {MAX_ENTRIES} entries")
    result: Mapping_ = {}
    for key, item in data.items():
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise _Reject("keys must be strings or integers")
        if isinstance(key, str) and len(key) > MAX_KEY_CHARS:
            raise _Reject(f"a key is longer than {MAX_KEY_CHARS} characters")
        label = str(key)[:40]
        if isinstance(item, list | tuple):
            if len(item) > MAX_LIST_ITEMS:
                raise _Reject(f"{label}: more than {MAX_LIST_ITEMS} items")
            result[key] = [_check_scalar(x, label) for x in item]
        else:
            result[key] = _check_scalar(item, label)
    return result


def _check_scalar(item: object, label: str) -> Scalar:
    if item is None or isinstance(item, bool | int):
        return item  # type: ignore[return-value]
    if isinstance(item, float):
        if not math.isfinite(item):
            raise _Reject(f"{label}: numbers must be finite")
        return item
    if isinstance(item, str):
        if len(item) > MAX_VALUE_CHARS:
            raise _Reject(f"{label}: a value is longer than {MAX_VALUE_CHARS} characters")
        return item
    raise _Reject(f"{label}: {type(item).__name__} values are not accepted")
