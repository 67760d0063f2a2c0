"""The ``X-Gitlab-Token`` check of ``POST /hooks/gitlab``, done before the body is read.

A delivery names its app with ``?app=`` or only inside its body (the project's path). The
token is checked first either way: against the named app's webhook secret, or else against
every app's, giving the apps it could be for; the body is parsed only when there is one, and
its project must then be one of them (one app's secret never works for another).
"""

from __future__ import annotations

import logging

from quayside.errors import ConfigError
from quayside.gateway.errors import ServiceUnavailable, Unauthorized
from quayside.inventory import Inventory
from quayside.runs.secrets import resolve_secret
from quayside.triggers.gitlab import verify_token

log = logging.getLogger("quayside.gateway")

NOT_ACCEPTED = "webhook not accepted: unknown project or wrong X-Gitlab-Token"
SECRET_HINT = (
    "set the project's webhook 'Secret token' in GitLab to the app's webhook_secret "
    "(apps.<app>.webhook_secret in quayside.yaml)"
)


def apps_for_token(inventory: Inventory, app_name: str | None, token: str | None) -> frozenset[str]:
    """The apps whose webhook secret equals ``token`` (compared in constant time).

    Args:
        inventory: the current inventory.
        app_name: the app the delivery names in ``?app=``, if it does: only its secret counts.
        token: the ``X-Gitlab-Token`` header, or None.

    Returns:
        The names of the matching apps (never empty).

    Raises:
        Unauthorized: no token, an unknown ``app_name``, or no secret matches (one message
            for all, so a caller learns nothing about which apps exist).
        ServiceUnavailable: the named app's secret cannot be resolved.
    """
    if not token:
        raise Unauthorized(NOT_ACCEPTED, hint=SECRET_HINT)
    if app_name is not None:
        app = inventory.apps.get(app_name)
        if app is None:
            log.warning("gitlab hook: ?app= names no app of the inventory")
            raise Unauthorized(NOT_ACCEPTED, hint=SECRET_HINT)
        if app.webhook_secret is None:
            log.warning("gitlab hook: app %s has no webhook_secret configured", app_name)
            raise Unauthorized(
                NOT_ACCEPTED, hint=f"set apps.{app_name}.webhook_secret in quayside.yaml"
            )
        try:
            expected = resolve_secret(app.webhook_secret, name=f"apps.{app_name}.webhook_secret")
        except ConfigError as e:
            log.warning("gitlab hook: %s", e.message)
            raise ServiceUnavailable(
                f"the webhook secret of app {app_name!r} is not available", hint=e.hint
            ) from None
        if not verify_token(expected, token):
            log.warning("gitlab hook: wrong X-Gitlab-Token for app %s", app_name)
            raise Unauthorized(NOT_ACCEPTED, hint=SECRET_HINT)
        return frozenset({app_name})
    matching: set[str] = set()
    for name, app in sorted(inventory.apps.items()):
        if app.webhook_secret is None:
            continue
        try:
            expected = resolve_secret(app.webhook_secret, name=f"apps.{name}.webhook_secret")
        except ConfigError as e:
            log.warning("gitlab hook: %s", e.message)
            continue
        if verify_token(expected, token):
            matching.add(name)
    if not matching:
        log.warning("gitlab hook: the X-Gitlab-Token matches no app's webhook_secret")
        raise Unauthorized(NOT_ACCEPTED, hint=SECRET_HINT)
    return frozenset(matching)
