"""Approval codes: short single-use secrets an approver types into the Prefect UI's approval
form instead of their long-lived API token.

A code is 10 characters from a 32-character alphabet without look-alikes (no 0/O, 1/I),
shown as ``XXXXX-XXXXX``: 50 random bits. That is far too few for a long-lived credential,
and enough for this one: it answers one approval request as one user, once, until the request
expires, and every wrong guess is a recorded, refused answer in the ledger. It is stored like
a token secret (:func:`quayside.auth.tokens.hash_secret`: HMAC-SHA256 with a per-code salt).

Pure functions: storing and consuming codes belongs to the ledger.
"""

from __future__ import annotations

import secrets

from quayside.auth import tokens

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 10
GROUP = 5
_SEPARATORS = str.maketrans("", "", " -_\t")
_MAX_INPUT = 40


def new_code() -> str:
    """A fresh code in its canonical form (10 characters, no separator)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(code: str) -> str:
    """``code`` as shown to its approver: ``XXXXX-XXXXX``."""
    return f"{code[:GROUP]}-{code[GROUP:]}"


def normalize(text: str) -> str | None:
    """The canonical form of a typed code (case, spaces and dashes do not matter), or None
    when it cannot be a code at all."""
    if not isinstance(text, str) or len(text) > _MAX_INPUT:
        return None
    candidate = text.translate(_SEPARATORS).upper()
    if len(candidate) != LENGTH or any(c not in ALPHABET for c in candidate):
        return None
    return candidate


def hash_code(code: str) -> str:
    """The stored form of a canonical code (salted HMAC-SHA256, as for token secrets)."""
    return tokens.hash_secret(code)


def matches(code: str, stored_hash: str) -> bool:
    """Whether canonical ``code`` is the one hashed into ``stored_hash`` (constant time)."""
    return tokens.verify(code, stored_hash)
