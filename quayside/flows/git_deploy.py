"""Git deploy: a git ref -> versioned release directories on SSH hosts, switched atomically,
in batches, with hooks, health checks and automatic rollback past a failure threshold. The
flow's steps are in :mod:`quayside.flows.git_deploy_body`."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from pydantic import Field

from quayside.flows.git_deploy_body import deploy_release
from quayside.tasks.release_flow import release_flow
from quayside.tasks.release_lock import run_release_body


@release_flow(
    "git-deploy",
    "Deploy a git ref to an app's environment: versioned release directories, "
    "atomic switch, batches, health checks, automatic rollback past the failure threshold.",
)
async def git_deploy(
    app: str = Field(description="app name from quayside.yaml"),
    env: str = Field(description="environment of the app"),
    ref: str = Field(description="git tag, branch or commit sha"),
    hosts: list[str] | None = Field(None, description="only these hosts of the environment"),
    batch: int | str | None = Field(
        None, description="hosts per batch, N or 'N%' (default: the environment's)"
    ),
    dry_run: bool = Field(False, description="show per host what would change; touch nothing"),
    requested_by: str = Field("ui", description="who asked for this deploy"),
    approval: bool = Field(
        False,
        description="ask for approval even where the environment's policy needs none "
        "(an approval the policy requires is never skipped)",
    ),
    lock_wait_s: float = Field(
        0, ge=0, le=3600, description="wait this long for another deploy's lock (0 = refuse)"
    ),
) -> dict[str, Any] | State[Any]:
    """Deploy ``ref`` of ``app`` to ``env``.

    Resolves the ref in the app's mirror, exports and builds the payload, keeps it in the
    artifact store, then per host (one task, one SSH connection): read facts, stage the new
    release from the previous one sending only changed files, link shared paths, pre-switch
    hooks, atomic switch, post-switch hooks, health check. Hosts go in batches; past the
    failure threshold no new batch starts and every switched host is switched back.

    Ledger: one ``deploy`` release per run (``awaiting_approval`` while an approval is
    pending). It ends ``succeeded`` when the release is live (failed hosts below the threshold
    are listed in its summary), ``failed`` when the build failed or the threshold was passed
    (switched hosts rolled back, their outcome ``rolled_back``), and ``cancelled`` with
    ``summary.result == "no change"`` when every host already had this content (or
    ``"not run"`` when another run held the deploy lock) - so a
    no-change re-run never becomes the "previous release" a rollback goes to. A dry run
    writes nothing to the ledger; its per-host plan is a Markdown artifact and the return value.

    Args:
        app: app name from quayside.yaml.
        env: environment of the app.
        ref: git tag, branch or commit sha.
        hosts: only these hosts of the environment (default all).
        batch: hosts per batch, ``N`` or ``"N%"`` (default the environment's ``batch``).
        dry_run: resolve, build and plan; report per host what would change. Nothing on the
            hosts changes, no lock is taken and nothing is written to the ledger.
        requested_by: recorded in the ledger and shown to approvers.
        approval: ask for approval even where the environment's policy requires none (the
            environment's policy, or one MASTER, no self-approval). A required approval is
            asked for whatever this says.
        lock_wait_s: 0 refuses at once when another deploy of app/env runs; else wait so long.

    A scheduled deploy's approval is asked when it is submitted; approved by the time the run
    starts, it does not wait at all. A run submitted through a trigger checks first that its
    submitter still has the right (and is recorded as requested by them).

    Returns:
        ``{"release": ledger id, "release_id": dir name, "commit": sha, "result": "deployed" |
        "no change" | "planned", "hosts": {host: status}, "failed": [...]}``.

    Raises:
        quayside.errors.InputError: an unsafe ref (nothing was run).
        quayside.errors.NotFoundError: unknown app, environment, host or ref.
        prefect.exceptions.CancelledRun: (called in-process) not run: another deploy of this
            app/env holds the lock; the refusal is recorded as a ``cancelled`` release with
            ``summary.result == "not run"``. Through a worker the run ends ``Cancelled``.
        quayside.deploy.errors.BuildError: the build failed.
        quayside.deploy.errors.ThresholdExceeded: too many hosts failed; switched hosts were
            rolled back.

    Example:
        >>> asyncio.run(git_deploy("web", "prod", "v1.4.2", batch="25%"))  # an async flow
    """
    return await run_release_body(
        deploy_release,
        app=app,
        env=env,
        ref=ref,
        hosts=hosts,
        batch=batch,
        dry_run=dry_run,
        requested_by=requested_by,
        approval=approval,
        lock_wait_s=lock_wait_s,
    )
