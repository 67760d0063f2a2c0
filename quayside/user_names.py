"""User names that arrive from outside (webhooks, chat callbacks, API bodies): name characters
only — letters of any script, digits, ``.``, ``_``, ``-`` and ``@``, at most :data:`MAX_CHARS`.

A name that identifies someone (who asked for a release: the approval gate compares it with the
approver's, the ledger and audit log record it) is refused when it has anything else
(:data:`UserName`): cleaning it could turn one name into another. A name that only informs
(a display name) is cleaned (:func:`clean_name`).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MAX_CHARS = 100
"""Longest name accepted."""

PUNCTUATION = "._-@"
"""The characters besides letters and digits a name may have."""

RULE = f"letters, digits and '{PUNCTUATION}' only, at most {MAX_CHARS} characters"
"""What a refusal tells the sender."""


def _name_char(ch: str) -> bool:
    # letters and digits of any script, and the combining marks some scripts write words with
    return ch.isalnum() or ch in PUNCTUATION or unicodedata.category(ch) in ("Mn", "Mc")


def is_name(value: str) -> bool:
    """Whether ``value`` is a non-empty name of name characters, at most :data:`MAX_CHARS`.

    >>> is_name("zhang.san@corp"), is_name("张三"), is_name("eve\\n| approvals |")
    (True, True, False)
    """
    return 0 < len(value) <= MAX_CHARS and all(_name_char(ch) for ch in value)


def _checked(value: str) -> str:
    if not is_name(value):
        raise PydanticCustomError("user_name", "a user name has " + RULE)
    return value


UserName = Annotated[str, AfterValidator(_checked)]
"""A pydantic field type for a name that identifies someone: anything else fails validation
(the error names the field, never echoes the value)."""


def clean_name(value: str | None) -> str | None:
    """A display name cut down to name characters (whitespace runs become ``.``), or ``None``
    when nothing is left.

    >>> clean_name("John  Smith"), clean_name("eve\\n| approvals | 1 of 1 |"), clean_name("|")
    ('John.Smith', 'eve.approvals.1.of.1', None)
    """
    if value is None:
        return None
    words = ["".join(ch for ch in word if _name_char(ch)) for word in value.split()]
    cleaned = ".".join(word for word in words if word)[:MAX_CHARS].strip(".")
    return cleaned or None
