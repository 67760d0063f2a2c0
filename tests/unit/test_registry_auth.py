"""Challenges and tokens as the distribution spec's token authentication describes them
(docs: distribution/distribution docs/spec/auth/token.md — "How to authenticate")."""

from __future__ import annotations

import pytest

from quayside.registry.auth import (
    Challenge,
    basic_header,
    parse_challenge,
    repository_scope,
    token_from_answer,
    token_request,
)

#: the example challenge of the token auth spec
SPEC_CHALLENGE = (
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
    'scope="repository:samalba/my-app:pull,push"'
)


def test_the_spec_example_challenge_parses() -> None:
    challenge = parse_challenge(SPEC_CHALLENGE)
    assert challenge == Challenge(
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:samalba/my-app:pull,push",
        },
    )


def test_basic_challenge_and_none() -> None:
    assert parse_challenge('Basic realm="quayside-test"') == Challenge(
        "basic", {"realm": "quayside-test"}
    )
    assert parse_challenge(None) is None
    assert parse_challenge("   ") is None


def test_token_request_sends_service_and_every_scope_once_sorted() -> None:
    challenge = parse_challenge(SPEC_CHALLENGE)
    assert challenge is not None
    request = token_request(
        challenge,
        [
            repository_scope("b/app", ("pull", "push")),
            repository_scope("a/app", ("pull",)),
            repository_scope("a/app", ("pull",)),
        ],
    )
    assert request.url == "https://auth.docker.io/token"
    assert request.params == (
        ("service", "registry.docker.io"),
        ("scope", "repository:a/app:pull"),
        ("scope", "repository:b/app:pull,push"),
    )


def test_a_challenge_without_realm_cannot_give_a_token() -> None:
    with pytest.raises(ValueError, match="realm"):
        token_request(Challenge("bearer", {}), [])


def test_token_or_access_token_is_read() -> None:
    assert token_from_answer({"token": "t1", "expires_in": 300}) == "t1"
    assert token_from_answer({"access_token": "t2"}) == "t2"
    with pytest.raises(ValueError, match="no token"):
        token_from_answer({"error": "denied"})


def test_basic_header_is_base64_of_user_colon_password() -> None:
    assert basic_header("aladdin", "opensesame") == "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
