"""Turning a verified trigger into a Prefect run: which app, which tag rule, whether automatic
triggers are paused, which parameters the deployment takes, and the idempotent start."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from quayside.auth.policy import RunKind, policy_for
from quayside.deployments.catalogue import DeploymentSpec, by_name
from quayside.errors import NotFoundError, QuaysideError
from quayside.gateway.context import GatewayContext
from quayside.inventory import App, Inventory
from quayside.runs import RunHandle, read_run, start_run
from quayside.triggers.gitlab import TAG_RE, TagRule, compile_rules, dedupe_key, match_tag
from quayside.triggers.idempotency import TAG_TRIGGERS, scoped_key
from quayside.triggers.repos import same_project

log = logging.getLogger("quayside.gateway")


def get_app(inventory: Inventory, name: str) -> App:
    """The inventory app ``name``.

    Raises:
        NotFoundError: no such app (the message lists none of the others).
    """
    app = inventory.apps.get(name)
    if app is None:
        raise NotFoundError(f"no app {name[:64]!r} in the inventory")
    return app


def app_for_repo(inventory: Inventory, candidates: Iterable[str | None]) -> str | None:
    """The app whose ``repo`` names the same project as one of ``candidates`` (paths or URLs).

    An app's repo matches when its path equals the candidate's path or ends with
    ``/<candidate path>`` (``https://gitlab.example.com/web/site.git`` ~ ``web/site``).
    """
    wanted = [c for c in candidates if c]
    for name, app in sorted(inventory.apps.items()):
        if app.repo and any(same_project(candidate, app.repo) for candidate in wanted):
            return name
    return None


def env_requires_approval(
    inventory: Inventory, app: str, env: str, *, kind: RunKind = "deploy"
) -> bool:
    """Whether the environment's policy asks for approval of a ``kind`` run (then no trigger
    may skip the gate: the ``approval`` parameter is never passed as false for it)."""
    return policy_for(inventory, app, env, kind=kind) is not None


def rules_of(app_name: str, app: App) -> list[TagRule]:
    """The app's tag rules, compiled."""
    return compile_rules(
        [r.model_dump() for r in app.tag_rules], where=f"apps.{app_name}.tag_rules"
    )


@dataclass(frozen=True)
class TagTrigger:
    """A new tag that may deploy: who pushed it where."""

    app: str
    repo: str
    tag: str
    commit: str
    user: str | None
    via: str
    reported_by: str | None = None
    """who the sender says pushed (the git hook's pusher): a Prefect tag, never an identity"""


@dataclass(frozen=True)
class Outcome:
    """What the gateway did with a trigger; becomes the JSON response.

    ``status`` is ``started``, ``already_running`` or ``already_ran`` (a run existed for the
    trigger: a re-pushed tag, a duplicate delivery), ``ignored`` or ``paused``; ``message`` is
    the one line a person reads (the git hook prints it to the pusher)."""

    status: str
    reason: str
    message: str | None = None
    flow_run_id: str | None = None
    ui_url: str | None = None
    environment: str | None = None
    approval: bool | None = None
    state: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The response body (``None`` fields left out)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def accepted_parameters(
    ctx: GatewayContext, spec: DeploymentSpec, wanted: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Keep the parameters the deployment takes; list the names it does not.

    Returns:
        ``(parameters, dropped_names)``.
    """
    names = ctx.deployment_parameters(spec.full_name)
    kept = {k: v for k, v in wanted.items() if k in names}
    return kept, sorted(k for k in wanted if k not in names)


def start(
    ctx: GatewayContext,
    deployment: str,
    parameters: dict[str, Any],
    *,
    idempotency_key: str,
    user: str,
    app: str | None,
    env: str | None,
    tags: list[str],
    scheduled_at: Any = None,
    for_submission: bool = False,
) -> RunHandle:
    """Start (or find, by idempotency key) a run of catalogue entry ``deployment``; a key this
    gateway used recently is answered from memory (duplicate deliveries). The handle says
    whether the run is new (``created``) and, for one that existed, its state then
    (:func:`start_status` words it). ``for_submission``: created held until its submission is
    recorded (:func:`quayside.runs.start_run`).

    The key is scoped (:func:`~quayside.triggers.idempotency.scoped_key`): the same
    ``idempotency_key`` from another ``user``, or for another ``app`` or ``env``, is another run.
    """
    key = scoped_key(user=user, deployment=deployment, app=app, env=env, key=idempotency_key)
    known = ctx.recent_runs.get(key)
    if known is not None:
        return _as_it_is_now(known)
    handle = start_run(
        deployment,
        parameters,
        idempotency_key=key,
        scheduled_at=scheduled_at,
        tags=["quayside", *tags],
        for_submission=for_submission,
    )
    ctx.recent_runs.put(key, handle)
    return handle


def _as_it_is_now(known: RunHandle) -> RunHandle:
    """A remembered run, which existed before this call, in its current state."""
    try:
        status = read_run(known.id)
    except QuaysideError as e:
        log.info("run %s: state not read (%s); answered from memory", known.id, e.message)
        return replace(known, created=False)
    return replace(known, created=False, state_type=status.state_type, state_name=status.state_name)


def start_status(handle: RunHandle) -> tuple[str, str]:
    """``(status, message)`` of a start: ``started``, or the run its key already had —
    ``already running: <url> (Paused)`` / ``already ran: <url> (Completed)``."""
    if handle.created:
        return "started", f"started: {handle.ui_url}"
    if handle.final:
        return "already_ran", f"already ran: {handle.ui_url} ({handle.state_name})"
    return "already_running", f"already running: {handle.ui_url} ({handle.state_name})"


def deploy_tag(ctx: GatewayContext, trigger: TagTrigger) -> Outcome:
    """Apply the app's tag rules to a new tag and start ``git-deploy`` if one matches.

    Duplicate deliveries (same app, repo, tag and commit) use the same idempotency key, so they
    start one run. A tag matching no rule, or an environment whose automatic triggers are
    paused, is acknowledged and nothing runs.

    Raises:
        NotFoundError: the app is not in the inventory, or git-deploy is not registered.
    """
    inventory = ctx.inventory()
    app = get_app(inventory, trigger.app)
    if not TAG_RE.fullmatch(trigger.tag) or ".." in trigger.tag:
        return _ignored(
            trigger, f"tag {trigger.tag[:80]!r} has characters Quayside does not deploy"
        )
    rule = match_tag(rules_of(trigger.app, app), trigger.tag)
    if rule is None:
        return _ignored(trigger, f"tag {trigger.tag!r} matches no tag rule of app {trigger.app!r}")
    from quayside.ledger.environments import auto_triggers_paused

    paused = auto_triggers_paused(ctx.engine(), trigger.app, rule.environment)
    if paused is not None:
        log.info(
            "trigger %s for %s/%s not started: %s",
            trigger.via,
            trigger.app,
            rule.environment,
            paused,
        )
        return Outcome(
            status="paused",
            reason=paused,
            message=f"paused: {paused}",
            environment=rule.environment,
        )
    spec = by_name(ctx.config.git_deploy_deployment)
    wanted = {
        "app": trigger.app,
        "env": rule.environment,
        "ref": trigger.tag,
        "requested_by": trigger.user or trigger.via,
        "approval": rule.approval
        or env_requires_approval(inventory, trigger.app, rule.environment),
    }
    parameters, _ = accepted_parameters(ctx, spec, wanted)
    handle = start(
        ctx,
        spec.name,
        parameters,
        idempotency_key=dedupe_key(trigger.app, trigger.repo, trigger.tag, trigger.commit),
        user=TAG_TRIGGERS,  # content-keyed: one run per tag, whoever delivered it
        app=trigger.app,
        env=rule.environment,
        tags=[
            f"app:{trigger.app}",
            f"env:{rule.environment}",
            f"trigger:{trigger.via}",
            *([f"pusher:{trigger.reported_by}"] if trigger.reported_by else []),
        ],
    )
    status, message = start_status(handle)
    log.info(
        "trigger %s: tag %s of %s -> %s run %s (%s)",
        trigger.via, trigger.tag, trigger.app, rule.environment, handle.id, status,
    )  # fmt: skip
    return Outcome(
        status=status,
        reason=f"tag {trigger.tag!r} matches {rule.pattern.pattern!r} -> {rule.environment}",
        message=message,
        flow_run_id=handle.id,
        ui_url=handle.ui_url,
        environment=rule.environment,
        approval=bool(wanted["approval"]),
        state=handle.state_name,
    )


def _ignored(trigger: TagTrigger, reason: str) -> Outcome:
    log.info("trigger %s ignored: %s", trigger.via, reason)
    return Outcome(status="ignored", reason=reason, message=f"ignored: {reason}")


def catalogue_entry(name: str) -> DeploymentSpec:
    """The catalogue entry ``name`` (re-exported for routes)."""
    return by_name(name)
