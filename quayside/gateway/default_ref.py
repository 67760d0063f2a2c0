"""The ref a deploy without one releases: the environment's ``default_ref``.

A branch is used as it is. ``latest-tag`` is resolved here, when the deploy is asked for, in
the app's git mirror (the one the flow reads, under ``QUAYSIDE_HOME/mirrors``): one incremental
fetch, then the newest tag that matches one of the app's tag rules for the environment. It is
resolved in the gateway rather than when the run starts so that the reply names the tag, and
the run's ``ref`` parameter (shown in the Prefect UI), its idempotency key and its approval are
about that tag: an approval never covers "whatever tag is newest when the run starts". The
fetch also warms the mirror the run then reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from quayside.errors import InputError, QuaysideError
from quayside.gateway.context import GatewayContext
from quayside.inventory.default_refs import LATEST_TAG
from quayside.inventory.models import App
from quayside.triggers.gitlab import TAG_RE

FETCH_TIMEOUT_S = 30.0
"""How long a chat deploy waits for the mirror's fetch (and for another process's)."""


@dataclass(frozen=True)
class ChosenRef:
    """The ref chosen for a deploy, and why (for the reply)."""

    ref: str
    why: str


def newest_matching(tags: Iterable[str], patterns: Iterable[str]) -> str | None:
    """The first of ``tags`` (newest first) that one of ``patterns`` matches (``re.search``,
    as tag rules match) and that Quayside deploys (safe characters)."""
    compiled = [re.compile(p) for p in patterns]
    for tag in tags:
        if TAG_RE.fullmatch(tag) and ".." not in tag and any(p.search(tag) for p in compiled):
            return tag
    return None


def rule_patterns(app: App, env: str) -> list[str]:
    """The patterns of the app's tag rules that deploy to ``env``."""
    return [rule.pattern for rule in app.tag_rules if rule.environment == env]


def default_ref(ctx: GatewayContext, app_name: str, env_name: str) -> ChosenRef | None:
    """The environment's default ref, resolved; None if it has none.

    Raises:
        InputError: no tag matches the environment's tag rules, or the app has no repo.
        QuaysideError: the mirror could not be fetched or read (the message says to give the
            ref explicitly).
    """
    app = ctx.inventory().apps[app_name]
    configured = app.environments[env_name].default_ref
    if configured is None:
        return None
    where = f"apps.{app_name}.environments.{env_name}.default_ref"
    if configured != LATEST_TAG:
        return ChosenRef(configured, f"default_ref of {app_name}/{env_name}")
    if not app.repo:
        raise InputError(
            f"{where}: {LATEST_TAG} needs apps.{app_name}.repo", hint="give the ref explicitly"
        )
    patterns = rule_patterns(app, env_name)
    tags = _tags(ctx, app.repo, app_name, env_name)
    tag = newest_matching(tags, patterns)
    if tag is None:
        raise InputError(
            f"no tag of {app_name} matches {' or '.join(patterns)} ({where}: {LATEST_TAG})",
            hint=f"push a tag for {env_name}, or give the ref: deploy {app_name} to {env_name} "
            "<ref>",
        )
    return ChosenRef(tag, f"newest tag matching {' or '.join(patterns)}")


def _tags(ctx: GatewayContext, repo: str, app_name: str, env_name: str) -> list[str]:
    from quayside.source.mirror import GitMirror

    mirror = GitMirror(
        ctx.settings.mirrors_dir,
        repo,
        timeout=FETCH_TIMEOUT_S,
        local_timeout=FETCH_TIMEOUT_S,
        lock_timeout=FETCH_TIMEOUT_S,
    )
    try:
        mirror.sync()
        return mirror.tags()
    except QuaysideError as e:
        raise QuaysideError(
            f"cannot list the tags of {app_name} ({e.message}); give the ref: "
            f"deploy {app_name} to {env_name} <ref>",
            hint=e.hint,
        ) from e
