"""What Quayside asks of Prefect, synchronously: start a run of a catalogue entry, read its
state and logs, resume, cancel or delete it. Plain HTTP (:mod:`quayside.runs.prefect_http`):
nothing here imports Prefect, so ``quayside deploy`` creates its run without Prefect's
seconds of imports."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from quayside.auth.submission_tag import SUBMISSION_TAG
from quayside.deployments.catalogue import by_name
from quayside.errors import InputError, NotFoundError
from quayside.runs.log_marker import logs_sent
from quayside.runs.prefect_http import PrefectHTTP, api_url

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

#: a run created for a submission is due this long after its creation, so that no worker takes
#: it before its submission is recorded (workers take runs due within
#: PREFECT_WORKER_PREFETCH_SECONDS); :func:`release_run` then makes it due when it was asked
#: for. A trigger that died before releasing it leaves it to start at this time, where it checks
#: its submitter, or refuses itself when there is no submission
HOLD = timedelta(minutes=5)
#: the creator releases (or deletes) its held run only within this many seconds of creating
#: it: later a worker may be about to take it, and a state set then could move a run that has
#: started back to Scheduled
RELEASE_WITHIN_S = HOLD.total_seconds() / 2
#: the name of a held run's Scheduled state (what the Prefect UI shows while it waits; not
#: "Submitting": that is the Pending state a worker names its run while starting it)
HELD_NAME = "AwaitingSubmission"
HELD_MESSAGE = (
    "waiting for its submission to be recorded; if its trigger failed, it starts at this time "
    "and checks its submitter (without one it refuses to act)"
)

log = logging.getLogger("quayside.runs")

#: deployment id by (API URL, ``flow/deployment``), as this process last read it: the gateway
#: creates a run per request and the deployment's id does not change while it stays
#: registered (``quayside up`` registers it again under the same id; only a deleted deployment
#: or a new Prefect database gives a new one, and creating a run on a gone id answers 404,
#: which drops the entry and reads the id again)
_deployment_ids: dict[tuple[str, str], str] = {}


def forget_deployment_ids() -> None:
    """Drop every cached deployment id (the next run of each deployment reads it again)."""
    _deployment_ids.clear()


def _deployment_id(api: PrefectHTTP, full_name: str) -> str:
    """The id of deployment ``flow/deployment`` at ``api``: cached, else read by name.

    Raises:
        NotFoundError: the deployment is not registered.
    """
    key = (api.url, full_name)
    cached = _deployment_ids.get(key)
    if cached is not None:
        return cached
    dep = api.call("GET", f"/deployments/name/{full_name}", missing_ok=True)
    if dep is None:
        raise NotFoundError(
            f"deployment '{full_name}' is not registered with Prefect",
            hint="`quayside up` registers the catalogue; is the platform running?",
        )
    _deployment_ids[key] = str(dep["id"])
    return _deployment_ids[key]


@dataclass(frozen=True)
class RunHandle:
    """A flow run :func:`start_run` created, or found for its idempotency key.

    Attributes:
        created: False when the idempotency key was known: the run existed before the call.
        state_type: the run's state then (``SCHEDULED``, ``RUNNING``, ``COMPLETED``, ...).
        state_name: its display name (``Scheduled``, ``Paused``, ``Completed``, ...).
    """

    id: str
    name: str
    deployment: str
    ui_url: str
    scheduled_at: datetime | None
    created: bool = True
    state_type: str = "SCHEDULED"
    state_name: str = "Scheduled"
    release_at: datetime | None = None
    """for a run this call created held (``for_submission``): when :func:`release_run` makes
    it due; None when there is nothing to release"""
    held_since: float | None = None
    """``time.monotonic()`` when this process created the held run"""

    @property
    def final(self) -> bool:
        """Whether the run had ended (completed, failed, crashed or cancelled)."""
        return self.state_type in FINAL_STATES

    @property
    def held(self) -> bool:
        """Whether this is a held run this process created and may still release or delete:
        no worker can have taken it yet (see :data:`RELEASE_WITHIN_S`)."""
        return (
            self.created
            and self.release_at is not None
            and self.held_since is not None
            and time.monotonic() - self.held_since < RELEASE_WITHIN_S
        )


@dataclass(frozen=True)
class RunStatus:
    id: str
    name: str
    state_type: str
    state_name: str
    message: str | None
    parameters: dict[str, Any]
    tags: tuple[str, ...]
    #: the run says its log lines are all in the API (:mod:`quayside.runs.log_marker`)
    logs_sent: bool = False

    @property
    def final(self) -> bool:
        return self.state_type in FINAL_STATES

    @property
    def paused(self) -> bool:
        return self.state_type == "PAUSED"


def ui_url_for(run_id: str) -> str:
    """The Prefect UI page of a flow run."""
    import os

    api = api_url().rstrip("/")
    base = os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api")
    return f"{base}/runs/flow-run/{run_id}"


def _uuid(run_id: str) -> UUID:
    try:
        return UUID(str(run_id))
    except ValueError:
        raise InputError(f"'{run_id}' is not a flow run id (expected a UUID)") from None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _state_json(
    type_: str, name: str, message: str | None = None, **details: Any
) -> dict[str, Any]:
    """A state as Prefect's client sends it (``StateCreate``)."""
    return {"type": type_, "name": name, "message": message, "state_details": details}


def _status(run: dict[str, Any]) -> RunStatus:
    state = run.get("state") or {}
    return RunStatus(
        id=str(run["id"]),
        name=str(run["name"]),
        state_type=state.get("type") or "PENDING",
        state_name=state.get("name") or state.get("type") or "Pending",
        message=state.get("message"),
        parameters=dict(run.get("parameters") or {}),
        tags=tuple(run.get("tags") or ()),
        logs_sent=logs_sent(run),
    )


def _start(
    api: PrefectHTTP,
    deployment: str,
    parameters: dict[str, Any],
    idempotency_key: str | None,
    scheduled_at: datetime | None,
    tags: list[str],
    name: str | None,
    for_submission: bool,
) -> RunHandle:
    spec = by_name(deployment)
    now = datetime.now(UTC)
    wanted = scheduled_at or now
    state = _state_json("SCHEDULED", "Scheduled", scheduled_time=wanted.isoformat())
    release_at: datetime | None = None
    if for_submission:
        tags = [*tags, SUBMISSION_TAG]
        held_until = now + HOLD
        if wanted < held_until:  # due before its submission is surely recorded: hold it
            release_at = wanted
            state = _state_json(
                "SCHEDULED", HELD_NAME, HELD_MESSAGE, scheduled_time=held_until.isoformat()
            )
    # without a caller's key, one of our own: a request sent again after its answer was lost
    # then finds the run it created instead of starting the release twice
    own_key = idempotency_key is None
    idempotency_key = idempotency_key or f"quayside:{uuid4()}"
    # what PrefectClient.create_flow_run_from_deployment sends; the server answers 201 for a
    # new run and 200 with the existing one for a known idempotency key
    request = {
        "parameters": parameters,
        "context": {},
        "state": state,
        "tags": list(tags),
        "name": name,
        "idempotency_key": idempotency_key,
    }
    cached = (api.url, spec.full_name) in _deployment_ids
    path = f"/deployments/{_deployment_id(api, spec.full_name)}/create_flow_run"
    run = api.call("POST", path, request, missing_ok=True)
    if run is None and cached:  # the deployment was deleted or registered anew since
        _deployment_ids.pop((api.url, spec.full_name), None)
        path = f"/deployments/{_deployment_id(api, spec.full_name)}/create_flow_run"
        run = api.call("POST", path, request, missing_ok=True)
    if run is None:
        _deployment_ids.pop((api.url, spec.full_name), None)
        raise NotFoundError(
            f"deployment '{spec.full_name}' is not registered with Prefect (it went away "
            "while the run was created)",
            hint="`quayside up` registers the catalogue; is the platform running?",
        )
    status = _status(run)
    details = (run.get("state") or {}).get("state_details") or {}
    created = own_key or api.last_status == 201
    return RunHandle(
        status.id,
        status.name,
        spec.full_name,
        ui_url_for(status.id),
        _when(details.get("scheduled_time")),
        created=created,
        state_type=status.state_type,
        state_name=status.state_name,
        # only the creator releases: a retry with the same key found a run that its first
        # request releases (or that starts at its held time), never moves its state
        release_at=release_at if created else None,
        held_since=time.monotonic() if created and release_at is not None else None,
    )


def start_run(
    deployment: str,
    parameters: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    scheduled_at: datetime | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    for_submission: bool = False,
) -> RunHandle:
    """Create a flow run of catalogue entry ``deployment`` through the Prefect API.

    Args:
        deployment: catalogue name (``git-deploy``) or ``flow/deployment``.
        parameters: flow parameters, merged over the deployment's defaults.
        idempotency_key: the same key never creates a second run.
        scheduled_at: run then instead of now.
        tags: extra tags on the run.
        name: run name (Prefect generates one if omitted).
        for_submission: the caller records the run's submission next
            (:func:`quayside.runs.submission.record`): the run carries
            :data:`~quayside.auth.submission_tag.SUBMISSION_TAG` and, when it is due sooner
            than :data:`HOLD` from now, is created held (Scheduled ``AwaitingSubmission``, due in
            :data:`HOLD`) so that no worker starts it before the record exists;
            :func:`release_run` makes it due at ``scheduled_at`` (or now) once it does.

    Returns:
        The run's id, name and UI URL.

    Raises:
        NotFoundError: unknown catalogue entry or unregistered deployment.
        PrefectUnavailable: the API does not answer.
    """
    with PrefectHTTP() as api:
        return _start(
            api,
            deployment,
            parameters or {},
            idempotency_key,
            scheduled_at,
            tags or [],
            name,
            for_submission,
        )


def release_run(handle: RunHandle) -> RunHandle:
    """Make the held run ``handle`` due when it was asked for (now, or its ``scheduled_at``):
    one state change, whose Scheduled event wakes the worker at once.

    Only the process that created the run releases it, and only within
    :data:`RELEASE_WITHIN_S` of creating it: a run past that is left to start at its held
    time (a worker may be taking it already, and Prefect would let a state set now move a
    started run back to Scheduled). The state change carries a transition id of its own run,
    so a request resent after its answer was lost is refused by Prefect, not applied twice.

    Returns:
        The handle as the run is now (its state and due time); ``handle`` itself when there
        was nothing to release.

    Raises:
        PrefectUnavailable: the API does not answer.
    """
    if handle.release_at is None or not handle.created:
        return handle
    if not handle.held:
        log.warning(
            "run %s not released: created %.0fs ago; it starts at its held time",
            handle.id,
            time.monotonic() - (handle.held_since or 0.0),
        )
        return replace(handle, release_at=None, held_since=None)
    transition = uuid5(NAMESPACE_URL, f"quayside:release:{handle.id}")
    state = _state_json(
        "SCHEDULED",
        "Scheduled",
        scheduled_time=handle.release_at.isoformat(),
        transition_id=str(transition),
    )
    with PrefectHTTP() as api:
        result = api.call("POST", f"/flow_runs/{_uuid(handle.id)}/set_state", {"state": state})
    now = result.get("state") or {}
    details = now.get("state_details") or {}
    # a resent request Prefect refused as the same transition finds the run released already
    if result.get("status") != "ACCEPT" and now.get("name") != "Scheduled":
        log.warning(
            "run %s not released (%s): %s",
            handle.id,
            result.get("status"),
            (result.get("details") or {}).get("reason"),
        )
    return replace(
        handle,
        scheduled_at=_when(details.get("scheduled_time")) or handle.scheduled_at,
        state_type=now.get("type") or handle.state_type,
        state_name=now.get("name") or handle.state_name,
        release_at=None,
        held_since=None,
    )


def _read(api: PrefectHTTP, run_id: str) -> RunStatus:
    run = api.call("GET", f"/flow_runs/{_uuid(run_id)}", missing_ok=True)
    if run is None:
        raise NotFoundError(f"no flow run '{run_id}'")
    return _status(run)


def read_run(run_id: str) -> RunStatus:
    """The current state of flow run ``run_id``.

    Raises:
        NotFoundError: no such run. InputError: not a UUID.
    """
    with PrefectHTTP() as api:
        return _read(api, run_id)


def find_run_by_key(idempotency_key: str) -> RunStatus | None:
    """The flow run created with ``idempotency_key``, if there is one."""
    body = {"flow_runs": {"idempotency_key": {"any_": [idempotency_key]}}, "limit": 1}
    with PrefectHTTP() as api:
        runs = api.call("POST", "/flow_runs/filter", body)
        return _status(runs[0]) if runs else None


def resume_run(run_id: str, run_input: dict[str, Any] | None = None) -> str:
    """Resume a paused flow run, with ``run_input`` for its RunInput form.

    Returns:
        Prefect's orchestration status (``ACCEPT``, ``REJECT``, ``ABORT``, ``WAIT``).
    """
    with PrefectHTTP() as api:
        result = api.call("POST", f"/flow_runs/{_uuid(run_id)}/resume", {"run_input": run_input})
        return str(result["status"])


def cancel_run(run_id: str, message: str) -> str:
    """Cancel flow run ``run_id`` (a scheduled run never starts; a running one is stopped by
    its worker) with ``message`` as the state message.

    Returns:
        Prefect's orchestration status (``ACCEPT`` when it took effect).
    """
    body = {"state": _state_json("CANCELLED", "Cancelled", message), "force": True}
    with PrefectHTTP() as api:
        result = api.call("POST", f"/flow_runs/{_uuid(run_id)}/set_state", body)
        return str(result["status"])


def delete_run(run_id: str) -> None:
    """Delete flow run ``run_id`` (a submission refused after its run was created, undone)."""
    with PrefectHTTP() as api:
        api.call("DELETE", f"/flow_runs/{_uuid(run_id)}", missing_ok=True)
