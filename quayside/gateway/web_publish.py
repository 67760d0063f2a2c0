"""The Publish button: start the catalogue's config publish deployment for one service of a
project's environment, as the logged-in user, through :mod:`quayside.runs` (the same authorized
submission the task API uses: the deployment's role on the app/env is checked and the
submission recorded, so the run checks its submitter again when it starts).

The button publishes the versions the page showed (``versions``: file -> version), not
whatever was saved since. It never publishes anything itself: the flow diffs, asks for
approval where the environment's policy says so, validates, swaps, reloads and verifies.
Blocking (the ledger and the Prefect API are called).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from quayside.auth.policy import policy_for
from quayside.config.address import check_filename
from quayside.deployments.catalogue import DeploymentSpec, by_name
from quayside.errors import InputError, NotFoundError
from quayside.gateway.context import GatewayContext
from quayside.gateway.errors import ServiceUnavailable
from quayside.gateway.submitting import submission_scope, submit_run
from quayside.gateway.web_projects import require_editor
from quayside.runs import RunHandle

PUBLISH_DEPLOYMENT = "config-publish"
"""The catalogue entry the button starts."""
KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""The button's idempotency key (one per page shown): a double click starts one run."""
MAX_FILES = 200


def encode_versions(versions: dict[str, int]) -> str:
    """``file=3;conf.d/web.conf=5``: one form field (filenames never hold ``;`` or ``=``)."""
    return ";".join(f"{name}={number}" for name, number in sorted(versions.items()))


def decode_versions(text: str) -> dict[str, int]:
    """The versions a Publish form carries.

    Raises:
        InputError: a bad filename (the core's rule), number or shape.
    """
    out: dict[str, int] = {}
    parts = [p for p in text.split(";") if p] if text else []
    if not parts or len(parts) > MAX_FILES:
        raise InputError("the publish form is malformed: reload the page and press Publish again")
    for part in parts:
        name, sep, number = part.partition("=")
        if not sep:
            raise InputError(f"versions: {part[:80]!r}: expected FILE=VERSION")
        check_filename(name, "versions")
        if not number.isdigit() or len(number) > 12 or int(number) < 1:
            raise InputError(f"versions: {name}: expected a version number")
        out[name] = int(number)
    return out


def publishable_services(ctx: GatewayContext, project: str, environment: str) -> frozenset[str]:
    """The services quayside.yaml says how to publish for ``project``/``environment``."""
    app = ctx.inventory().apps.get(project)
    env = app.environments.get(environment) if app is not None else None
    return frozenset(env.config) if env is not None else frozenset()


def publish_spec(name: str = PUBLISH_DEPLOYMENT) -> DeploymentSpec:
    """The publish deployment's catalogue entry.

    Raises:
        ServiceUnavailable: it is not in the catalogue (named, with what to do).
    """
    try:
        return by_name(name)
    except NotFoundError:
        raise ServiceUnavailable(
            f"cannot publish: the deployment '{name}' is not in this Quayside's flow "
            "catalogue (quayside/deployments/catalogue.py)",
            hint="your drafts are saved; publish once a Quayside version with the config "
            "publish flow is installed and `quayside up` has registered it",
        ) from None


def plan_publish(
    ctx: GatewayContext,
    user: str,
    project: str,
    environment: str,
    service: str,
    versions: dict[str, int],
    key: str,
    *,
    deployment: str = PUBLISH_DEPLOYMENT,
) -> Callable[[], RunHandle]:
    """Check a publish of ``service`` of ``project``/``environment`` for ``user`` (each refusal
    raised here, nothing recorded) and return its start.

    Args:
        versions: file -> version to publish (what the page showed).
        key: the form's idempotency key (a retried or double-clicked form starts one run).

    Returns:
        The start: it returns the run's handle (its ``ui_url`` links to the Prefect UI).

    Raises:
        PermissionDenied: ``user`` may not edit the project, or lacks the deployment's role.
        ServiceUnavailable: the deployment is not in the catalogue.
        NotFoundError: the deployment is not registered with Prefect, or an unknown
            environment.
        InputError: a malformed key.
    """
    if KEY_RE.fullmatch(key) is None:
        raise InputError("the publish form is malformed: reload the page and press Publish again")
    require_editor(ctx, user, project, environment)
    if service not in publishable_services(ctx, project, environment):
        raise InputError(
            f"{project}/{environment}: service '{service}' is not set up for publishing",
            hint=f"add apps.{project}.environments.{environment}.config.{service} (where its "
            "files go, how they are checked and reloaded) to quayside.yaml",
        )
    spec = publish_spec(deployment)
    names = ctx.deployment_parameters(spec.full_name)
    wanted: dict[str, object] = {
        "app": project,
        "env": environment,
        "service": service,
        "versions": versions,
        "requested_by": user,
    }
    params = {k: v for k, v in wanted.items() if k in names}
    if "approval" in names and policy_for(ctx.inventory(), project, environment) is not None:
        params["approval"] = True  # never skip a gate the environment asks for
    scope = submission_scope(ctx, user, spec, {**spec.parameters, **params})
    return lambda: submit_run(
        ctx,
        user,
        spec,
        scope,
        params,
        via="config-page",
        idempotency_key=key,
        tags=["trigger:config-page", f"app:{project}", f"env:{environment}", f"service:{service}"],
    )
