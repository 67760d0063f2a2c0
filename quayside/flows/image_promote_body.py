"""What :func:`quayside.flows.image_promote.image_promote` does, step by step: resolve the
digest in the source environment, plan the copy, the approval gate of the shared lifecycle
(the digest, version, what the target runs now, the commit range, the copy plan), the copy by
digest to the target's registry (verified there), then the image release in the target
environment - :func:`quayside.flows.image_release_body.release_image` itself, in this run,
its gate covered by the promote gate's approval (the approvers are asked once) - and last
the ledger: this promotion's release (kind ``image-promote``) finished with the
copy's figures and the image release it started, which gets a ``promote`` detail."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from quayside.auth.approvals import find_for_run
from quayside.flows.image_release_body import release_image
from quayside.images.promote_copy import copy_plan_summary
from quayside.images.promote_plan import copy_details, promote_markdown
from quayside.images.promote_target import PromoteChoice, checked_checksum, resolve_promote
from quayside.inventory.resolve import resolve_target
from quayside.ledger.models import ApprovalStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.release_details import add_release_detail
from quayside.ledger.release_queries import releases_of_run
from quayside.release.covering_approval import CoveringApproval
from quayside.runs.secrets import secret_value
from quayside.tasks.image_promote import copy_image_task
from quayside.tasks.ledger import ledger_engine
from quayside.tasks.release_lifecycle import ReleaseLifecycle, ReleaseRequest
from quayside.tasks.release_lock import NotRun
from quayside.tasks.release_resolve import resolve_release

GATE = "promote"
"""The promotion's approval gate (the image release it starts has its own, ``release``)."""


def promote_image(
    *,
    app: str,
    from_env: str,
    to_env: str,
    version_or_digest: str,
    batch: int | str | None,
    requested_by: str,
    approval: bool,
    lock_wait_s: float,
) -> dict[str, Any]:
    """The body of :func:`quayside.flows.image_promote.image_promote` (its docstring says
    what it does and returns), run in a thread by ``run_release_body``."""
    # the target after the promotion is resolved: its errors name the image, not the env
    resolved = resolve_release({"app": app, "env": to_env}, requested_by, target=False)
    inventory, requested_by = resolved.inventory, resolved.requested_by
    engine = ledger_engine()
    choice = resolve_promote(
        engine, inventory, app, from_env, to_env, version_or_digest, secrets=secret_value
    )
    summary = copy_plan_summary(choice)
    target = resolve_target(inventory, app, to_env)
    request = ReleaseRequest(
        app,
        to_env,
        ReleaseKind.image_promote,
        version=choice.version,
        requested_by=requested_by,
        shown=f"{choice.version} ({choice.digest[:19]}) from {from_env}",
        fields={"image_digest": choice.digest},
        details={"from_env": from_env, "digest": choice.digest, "copy_plan": summary},
        lock_wait_s=lock_wait_s,
    )
    with ReleaseLifecycle(request, target) as life:
        earlier = _approved_in_this_run(engine, life.run_id)
        if earlier is None:
            life.approve(
                lambda: promote_markdown(choice, summary, requested_by), asked=approval, gate=GATE
            )
            life.start()
        else:  # resumed from the top after the release's own gate: approved, running
            life.row = earlier
            get_run_logger().info("promotion %s approved earlier in this run: resuming", earlier)
        covering = _covering(engine, life.run_id, app, to_env)
        life.step = "copy"
        copied = copy_details(choice, copy_image_task(choice))
        life.step = f"image release in {to_env}"
        try:
            released = release_image(
                app=app,
                env=to_env,
                version_or_digest=choice.digest,
                config_versions=None,
                expected_artifact_sha256=_checksum(engine, choice),
                batch=batch,
                requested_by=requested_by,
                approval=False,
                lock_wait_s=lock_wait_s,
                rollback_of=None,
                preapproved=covering,
            )
        except NotRun as e:  # another release holds app/to_env: the copy stays, nothing ran
            life.finish(
                ReleaseStatus.cancelled,
                event=None,
                details={"copy": copied, "not_run": str(e)},
            )
            raise
        life.step = None
        row = released.get("release")
        if row is not None:
            add_release_detail(engine, int(row), "promote", {**copied, "promotion": life.row})
        life.finish(
            ReleaseStatus.succeeded,
            event="succeeded",
            text=f"{choice.version} ({choice.digest[:19]}) promoted from {from_env}: "
            + (f"image release #{row}" if row is not None else "it runs there already"),
            summary={"uploaded": copied["blobs_uploaded"], "present": copied["blobs_present"]},
            details={"copy": copied, "image_release": row, "result": released["result"]},
        )
    get_run_logger().info("promoted %s to %s (%s)", choice.digest, to_env, released["result"])
    return {
        "promotion": life.row,
        "release": row,
        "result": released["result"],
        "version": choice.version,
        "digest": choice.digest,
        "copy": copied,
        "hosts": released.get("hosts", {}),
        "failed": released.get("failed", []),
    }


def _covering(engine: Any, run_id: str | None, app: str, to_env: str) -> CoveringApproval | None:
    """The approval this run's promote gate gave, for the image release to take instead of
    asking again (the release's lifecycle checks it in the ledger); None where the promotion
    needed none."""
    if run_id is None:
        return None
    found = find_for_run(engine, run_id, app=app, env=to_env, gate=GATE)
    if found is None or found.status is not ApprovalStatus.approved:
        return None
    return CoveringApproval(int(found.id), GATE)


def _approved_in_this_run(engine: Any, run_id: str | None) -> int | None:
    """The promotion this flow run recorded and started before Prefect ran it again from the
    top (an approval gate after the promote gate suspended it - the image release's own, where
    the promote gate's approval did not cover it): its approval stands and its row goes on."""
    if run_id is None:
        return None
    for r in releases_of_run(engine, run_id):
        if r.kind is ReleaseKind.image_promote and r.status is ReleaseStatus.running:
            return int(r.id)
    return None


def _checksum(engine: Any, choice: PromoteChoice) -> str | None:
    """The artifact checksum the target's release checks where no build recorded one: the
    one the source environment's release of this digest checked."""
    if choice.image.artifact_sha256:
        return None  # the build's: the release finds it itself
    return checked_checksum(engine, choice.app, choice.from_env, choice.digest)
