"""Idempotency keys scoped to who asks for what (security review, issue 13 item 7).

A key a caller chooses (an ``Idempotency-Key`` header, a chat ``msgId``) used to be handed to
Prefect as it was, and Prefect's idempotency is per deployment only: another user's key for
another app and environment got back that user's run, reported as started, and nothing was
deployed. The key Prefect sees is now a hash of the user, the deployment, the app, the
environment and the caller's key, so two callers never share a run by accident or on purpose.

Tag triggers (GitLab hooks, the server-side git hook) are keyed by content the caller does not
choose (app, repo, tag, commit): they all act as one principal, :data:`TAG_TRIGGERS`, so a tag
delivered by a Tag Push hook, its pipeline hook and the git hook still starts one run.
"""

from __future__ import annotations

import hashlib
import json

TAG_TRIGGERS = "tag-triggers"
"""The principal of content-keyed tag deploys (whoever delivered the tag)."""
PREFIX = "qs1:"


def scoped_key(*, user: str, deployment: str, app: str | None, env: str | None, key: str) -> str:
    """The idempotency key Prefect gets for a caller's ``key``.

    Args:
        user: the authenticated principal (user name, or :data:`TAG_TRIGGERS`).
        deployment: the catalogue deployment name.
        app: the app the run acts on, if any.
        env: the environment the run acts on, if any.
        key: the caller's (or the content-derived) key.

    Returns:
        ``qs1:`` and the SHA-256 hex digest of the five values (unambiguous JSON list).
    """
    material = json.dumps([user, deployment, app, env, key], ensure_ascii=False)
    return PREFIX + hashlib.sha256(material.encode("utf-8")).hexdigest()
