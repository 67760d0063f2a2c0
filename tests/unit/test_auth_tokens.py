"""API tokens: format, parsing, salted hashing, constant-time verification."""

from __future__ import annotations

import hmac

import pytest

from quayside.auth import tokens
from quayside.errors import InputError


def test_new_token_format_and_roundtrip() -> None:
    token_id, plaintext = tokens.new_token()
    assert plaintext.startswith(f"qs_{token_id}_")
    parsed_id, secret = tokens.parse_token(plaintext)
    assert parsed_id == token_id
    assert len(secret) == 64
    stored = tokens.hash_secret(secret)
    assert secret not in stored
    assert tokens.verify(secret, stored)


def test_tokens_are_unique() -> None:
    made = {tokens.new_token()[1] for _ in range(200)}
    assert len(made) == 200


def test_hash_is_salted() -> None:
    _, plaintext = tokens.new_token()
    _, secret = tokens.parse_token(plaintext)
    first, second = tokens.hash_secret(secret), tokens.hash_secret(secret)
    assert first != second
    assert first.startswith("hmac-sha256$")
    assert tokens.verify(secret, first) and tokens.verify(secret, second)


def test_wrong_secret_fails() -> None:
    _, a = tokens.new_token()
    _, b = tokens.new_token()
    stored = tokens.hash_secret(tokens.parse_token(a)[1])
    assert not tokens.verify(tokens.parse_token(b)[1], stored)
    assert not tokens.verify("", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "hmac-sha256$zz$00",
        "md5$" + "0" * 32 + "$" + "0" * 64,
        "hmac-sha256$" + "0" * 32,
    ],
)
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert not tokens.verify("0" * 64, stored)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "qs_",
        "Bearer qs_0123456789ab_" + "0" * 64,
        "qs_0123456789ab_" + "0" * 63,
        "qs_0123456789ab_" + "0" * 65,
        "qs_0123456789AB_" + "0" * 64,
        "qs_0123456789a_" + "0" * 64,
        "xx_0123456789ab_" + "0" * 64,
        "qs_0123456789ab-" + "0" * 64,
        "qs_0123456789ab_" + "g" * 64,
        "qs_0123456789ab_" + "0" * 64 + "\x00",
        "x" * 10_000,
        "eyJ0eXAiOiTUyODk4MDg1LCJpc3McxODA2MCIsImRhdGEiOnsidXNlcl9pZCI6IWJsaXNoIn0.BgP8UAoN",
    ],
)
def test_parse_token_rejects_malformed(text: str) -> None:
    with pytest.raises(InputError) as exc:
        tokens.parse_token(text)
    assert "malformed API token" in str(exc.value)
    if len(text) > 20:
        assert text[-20:] not in str(exc.value)


def test_parse_token_strips_whitespace() -> None:
    token_id, plaintext = tokens.new_token()
    assert tokens.parse_token(f"  {plaintext}\n")[0] == token_id


def test_verify_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    stored = tokens.hash_secret("0" * 64)
    assert tokens.verify("0" * 64, stored)
    assert len(calls) == 1


def test_display_hides_secret() -> None:
    token_id, plaintext = tokens.new_token()
    shown = tokens.display(token_id)
    assert shown.startswith(f"qs_{token_id}_") and plaintext[-64:] not in shown
