"""Idempotency keys are scoped by user, deployment, app and environment (security review,
issue 13 item 7): the same caller key from two users, or for two apps or environments, is two
keys for Prefect; the GitLab dedupe key includes the app."""

from __future__ import annotations

import itertools

from quayside.triggers.gitlab import dedupe_key
from quayside.triggers.idempotency import scoped_key

BASE: dict[str, str | None] = {
    "user": "ann",
    "deployment": "git-deploy",
    "app": "alpha",
    "env": "test",
    "key": "k-1",
}


def key_with(**changes: str | None) -> str:
    values = {**BASE, **changes}
    return scoped_key(
        user=str(values["user"]),
        deployment=str(values["deployment"]),
        app=values["app"],
        env=values["env"],
        key=str(values["key"]),
    )


def test_the_review_case_gives_two_keys() -> None:
    """bob reusing ann's key for alpha/test, for beta/prod."""
    ann = scoped_key(user="ann", deployment="git-deploy", app="alpha", env="test", key="k-1")
    bob = scoped_key(user="bob", deployment="git-deploy", app="beta", env="prod", key="k-1")
    assert ann != bob


def test_every_part_of_the_scope_counts() -> None:
    keys = {key_with()}
    for field, other in [
        ("user", "bob"),
        ("deployment", "rollback"),
        ("app", "beta"),
        ("app", None),
        ("env", "prod"),
        ("env", None),
        ("key", "k-2"),
    ]:
        keys.add(key_with(**{field: other}))
    assert len(keys) == 8


def test_same_scope_same_key_and_shape() -> None:
    key = key_with()
    assert key == key_with(user="ann")
    assert key.startswith("qs1:") and len(key) == 4 + 64


def test_parts_cannot_be_shifted_into_each_other() -> None:
    """Separators inside values do not make two scopes collide."""
    values = ["a", "a:b", "b", 'a","b', ""]
    seen: dict[str, tuple[str, ...]] = {}
    for user, app in itertools.product(values, repeat=2):
        key = scoped_key(user=user, deployment="d", app=app, env=None, key="k")
        assert seen.setdefault(key, (user, app)) == (user, app)


def test_gitlab_dedupe_key_includes_the_app() -> None:
    assert dedupe_key("web", "group/app", "v1", "abc") != dedupe_key(
        "api", "group/app", "v1", "abc"
    )
