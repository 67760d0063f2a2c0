"""Config publish: versioned config files from the config center to a service's hosts -
diff, approve, stage, validate, atomic swap, reload or restart, verify, restore on failure;
optionally a canary first. The flow's steps are in :mod:`quayside.flows.config_publish_body`."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from pydantic import Field

from quayside.flows.config_publish_body import publish_config
from quayside.tasks.release_flow import release_flow
from quayside.tasks.release_lock import run_release_body


@release_flow(
    "config-publish",
    "Publish config center files to a service's hosts: diff, approve, validate "
    "the staged set, atomic swap, reload or restart, verify, restore on failure; canary first "
    "when asked.",
)
async def config_publish(
    app: str = Field(description="config project = app name from quayside.yaml"),
    env: str = Field(description="environment of the app"),
    service: str = Field(description="service whose files to publish (e.g. dnsmasq)"),
    files: list[str] | None = Field(None, description="only these files (default all)"),
    versions: dict[str, int] | None = Field(
        None, description="file -> version to publish (default each file's latest draft)"
    ),
    hosts: list[str] | None = Field(None, description="only these hosts of the environment"),
    canary: int | list[str] | None = Field(
        None, description="publish to the first N hosts (or these hosts) first"
    ),
    canary_wait_s: float | None = Field(
        None,
        ge=0,
        le=86400,
        description="after the canary, wait this long and go on; unset: an approval gate",
    ),
    batch: int | str | None = Field(
        None, description="hosts per batch, N or 'N%' (default: the environment's)"
    ),
    dry_run: bool = Field(False, description="show the diff per host; touch nothing"),
    requested_by: str = Field("ui", description="who asked for this publish"),
    approval: bool = Field(
        False, description="ask for approval even where the environment's policy needs none"
    ),
    lock_wait_s: float = Field(
        0, ge=0, le=3600, description="wait this long for another release's lock (0 = refuse)"
    ),
    rollback_of: int | None = Field(
        None, description="the config release this publish rolls back (set by rollback)"
    ),
    variable_versions: dict[str, int] | None = Field(
        None,
        description="variable -> version templates render with (default each variable's "
        "latest; set by rollback: the versions the release it returns to rendered with)",
    ),
) -> dict[str, Any] | State[Any]:
    """Publish ``service``'s config files of ``app``/``env`` to the environment's hosts.

    Resolves the versions (the latest drafts, or ``versions``) and renders templates with the
    environment's variables (their latest versions, or ``variable_versions``). Reads what
    every host has live; per host and file a unified diff (secrets masked) goes into a
    Markdown artifact; hosts already up to date are skipped, and an empty plan ends the run as
    "no change". The approval (the environment's policy, the
    shared gate) shows that diff and the rendered content's digest, so a changed content voids
    it. Then, under the app/env lock, per host in batches with the failure threshold: stage the
    new set beside the live one, validate it with the service's checker (nothing live changes
    if it fails), swap a symlink to it (one rename; the previous set is the backup), reload or
    restart as the changed files need, verify (dnsmasq: every changed record asked of that
    server; nginx: an HTTP probe; or a command). A failed reload or verify restores that host
    (old answers checked); past the threshold every switched host is restored.

    With ``canary``, those hosts go first and must all succeed; then an approval gate (or
    ``canary_wait_s``) before the rest. The published marker moves only when every targeted
    host (or, for a canary publish, the canary set) has the files.

    Ledger: a release of kind ``config`` per phase (one, or canary + rest) with per-host
    outcomes and the versions published in ``details.files`` (each file's version, rendered
    content hash and the variable versions its template read: what a rollback puts back).

    Args:
        app: the config project, an app of quayside.yaml.
        env: its environment.
        service: the service (``apps.<app>.environments.<env>.config.<service>``).
        files: only these files of the service (default all).
        versions: file -> version (default the latest draft of each).
        hosts: only these hosts (default all of the environment).
        canary: N (the first N hosts) or a list of hosts published first.
        canary_wait_s: after the canary, wait so long and continue; unset: approval gate.
        batch: hosts per batch, ``N`` or ``"N%"`` (default the environment's ``batch``).
        dry_run: plan only; nothing changes, nothing is recorded.
        requested_by: recorded in the ledger and shown to approvers.
        approval: ask for approval even where the policy requires none.
        lock_wait_s: 0 refuses at once when another release of app/env runs.
        rollback_of: the release a rollback undoes (see ``quayside.config.publish_rollback``).
        variable_versions: variable -> version to render templates with, the others at their
            latest (a rollback passes the versions its release rendered with). Checked before
            anything renders; the release records the versions the rendering read, not these.

    Returns:
        ``{"release": ledger id, "result": "published" | "no change" | "planned",
        "hosts": {host: status}, "failed": [...], "marker_moved": bool, "digest": ...,
        "files": {file: version}}`` (with ``canary`` and ``canary_release`` for a canary).

    Raises:
        quayside.errors.InputError: a bad filename, version, variable version or canary
            (nothing ran).
        quayside.errors.NotFoundError: unknown app, environment, service, file, variable or
            version.
        quayside.config.errors.TemplateError: a template fails to render (named).
        quayside.deploy.errors.HostsFailed: a host's live files could not be read.
        quayside.deploy.errors.ThresholdExceeded: too many hosts failed; all restored.

    Example:
        >>> asyncio.run(config_publish("DNS", "release", "dnsmasq", canary=1))
    """
    return await run_release_body(
        publish_config,
        project=app,
        env=env,
        service=service,
        files=files,
        versions=versions,
        hosts=hosts,
        canary=canary,
        canary_wait_s=canary_wait_s,
        batch=batch,
        dry_run=dry_run,
        requested_by=requested_by,
        approval=approval,
        lock_wait_s=lock_wait_s,
        rollback_of=rollback_of,
        variable_versions=variable_versions,
    )
