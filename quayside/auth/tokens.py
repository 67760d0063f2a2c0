"""API tokens: ``qs_<id>_<secret>``, shown once, stored as a salted hash.

A token is ``qs_`` + 12 hex characters of id + ``_`` + 64 hex characters (256 random bits) of
secret. The prefix makes leaked tokens recognisable to secret scanners and to people; the id
finds the stored row without comparing secrets.

Why salted SHA-256 and not scrypt/argon2: slow password hashes exist to make guessing
*low-entropy* human passwords expensive. A 256-bit random secret cannot be guessed at any hash
speed, so a slow KDF would only add latency to every API request. The per-token random salt
(HMAC key) means equal secrets never produce equal stored values and no precomputed table
applies to a leaked database.

Pure functions: storing, expiring and revoking tokens belongs to the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from quayside.errors import InputError

PREFIX = "qs"
ID_HEX = 12
SECRET_HEX = 64
SCHEME = "hmac-sha256"
TOKEN_RE = re.compile(rf"{PREFIX}_([0-9a-f]{{{ID_HEX}}})_([0-9a-f]{{{SECRET_HEX}}})")
_STORED_RE = re.compile(rf"{SCHEME}\$([0-9a-f]{{32}})\$([0-9a-f]{{64}})")
_MAX_TOKEN_CHARS = 200


def new_token() -> tuple[str, str]:
    """Create a new token.

    Returns:
        ``(token_id, plaintext)`` where ``plaintext`` is ``qs_<token_id>_<secret>``: show it
        to the user once, store ``token_id`` and :func:`hash_secret` of the secret part.
    """
    token_id = secrets.token_hex(ID_HEX // 2)
    secret = secrets.token_hex(SECRET_HEX // 2)
    return token_id, f"{PREFIX}_{token_id}_{secret}"


def parse_token(text: str) -> tuple[str, str]:
    """Split a presented token into id and secret.

    Args:
        text: the token as presented (surrounding whitespace is ignored; no ``Bearer``).

    Returns:
        ``(token_id, secret)``.

    Raises:
        InputError: the text is not a well-formed Quayside token. The token is not echoed.
    """
    candidate = text.strip() if isinstance(text, str) else ""
    match = TOKEN_RE.fullmatch(candidate) if len(candidate) <= _MAX_TOKEN_CHARS else None
    if match is None:
        raise InputError(
            "malformed API token",
            hint="tokens look like qs_<12 hex>_<64 hex>; create one with `quayside tokens create`",
        )
    return match.group(1), match.group(2)


def hash_secret(secret: str) -> str:
    """Hash a token secret for storage.

    Args:
        secret: the secret part of a token (see :func:`parse_token`).

    Returns:
        ``hmac-sha256$<salt hex>$<digest hex>`` with a fresh random 128-bit salt.
    """
    salt = secrets.token_bytes(16)
    digest = hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{SCHEME}${salt.hex()}${digest}"


def verify(secret: str, stored_hash: str) -> bool:
    """Check a presented secret against a stored hash in constant time.

    Args:
        secret: the secret part of the presented token.
        stored_hash: a value produced by :func:`hash_secret`.

    Returns:
        ``True`` if they match; ``False`` otherwise, including for a malformed stored value.
    """
    match = _STORED_RE.fullmatch(stored_hash) if isinstance(stored_hash, str) else None
    if match is None or not isinstance(secret, str):
        return False
    salt = bytes.fromhex(match.group(1))
    digest = hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, match.group(2))


def display(token_id: str) -> str:
    """A safe way to show a token in lists and logs.

    Args:
        token_id: the token's id.

    Returns:
        ``qs_<token_id>_…`` (never the secret).
    """
    return f"{PREFIX}_{token_id}_…"
