"""Whether a flow run is over, as Prefect sees it, and marking a run whose process vanished
as crashed: what a deploy asks about the holder of its lock, and what the reconciling sweep
at ``quayside up`` asks about the runs of releases still ``running``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

from quayside.errors import QuaysideError
from quayside.runs.client import FINAL_STATES, _uuid
from quayside.runs.prefect_sdk import _client, _run


@dataclass(frozen=True)
class RunLife:
    """What Prefect says about one flow run.

    Attributes:
        id: the flow run id.
        exists: False when Prefect has no such run (deleted, or another server's).
        state_type: ``RUNNING``, ``CRASHED``, ... (``MISSING`` when it does not exist).
        state_name: the state's display name.
        state_at: when it entered that state.
        infrastructure_pid: the worker's process id of the run (``str(pid)``), if recorded.
        pause_key: the key of the wait a paused run is in, if any.
    """

    id: str
    exists: bool
    state_type: str
    state_name: str
    state_at: datetime | None = None
    infrastructure_pid: str | None = None
    #: the key of the wait a paused run is in (``approval-<request>-<n>`` for a gate's)
    pause_key: str | None = None

    @property
    def final(self) -> bool:
        """Completed, failed, crashed or cancelled: nothing of the run acts any more."""
        return self.state_type in FINAL_STATES

    @property
    def over(self) -> bool:
        """Final, or gone from Prefect."""
        return not self.exists or self.final

    def describe(self) -> str:
        """``flow run <id> is Crashed`` / ``... no longer exists in Prefect``, for messages."""
        if not self.exists:
            return f"flow run {self.id} no longer exists in Prefect"
        return f"flow run {self.id} is {self.state_name}"


def _life(run: Any) -> RunLife:
    state = run.state
    return RunLife(
        id=str(run.id),
        exists=True,
        state_type=state.type.value if state else "PENDING",
        state_name=(state.name or state.type.value) if state else "Pending",
        state_at=state.timestamp if state else None,
        infrastructure_pid=run.infrastructure_pid,
        pause_key=state.state_details.pause_key if state else None,
    )


def runs_life(run_ids: Iterable[str]) -> dict[str, RunLife]:
    """What Prefect says about each of ``run_ids`` (one request; ids that are not UUIDs or
    not known to Prefect come back with ``exists=False``).

    Raises:
        PrefectUnavailable: the API does not answer.
    """
    wanted = list(dict.fromkeys(run_ids))
    uuids: list[UUID] = []
    for run_id in wanted:
        try:
            uuids.append(_uuid(run_id))
        except QuaysideError:
            continue

    async def go() -> dict[str, RunLife]:
        if not uuids:
            return {}
        async with _client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=uuids)), limit=len(uuids)
            )
            return {str(run.id): _life(run) for run in runs}

    found = _run(go())
    return {
        run_id: found.get(run_id) or RunLife(run_id, False, "MISSING", "missing")
        for run_id in wanted
    }


def started_runs_before(moment: datetime, limit: int = 200) -> dict[str, RunLife]:
    """Deployment runs (the ones workers start) that Prefect shows Pending or Running since
    before ``moment``: of the ``limit`` (at most 200, Prefect's page) that were due first.

    Raises:
        PrefectUnavailable: the API does not answer.
    """

    async def go() -> dict[str, RunLife]:
        async with _client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
                    ),
                    deployment_id=FlowRunFilterDeploymentId(is_null_=False),
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=limit,
            )
            lives = (_life(run) for run in runs)
            return {
                life.id: life
                for life in lives
                if life.state_at is not None and life.state_at < moment
            }

    return _run(go())


def run_life(run_id: str) -> RunLife:
    """:func:`runs_life` for one run."""
    return runs_life([run_id])[run_id]


def mark_crashed(run_id: str, message: str) -> str:
    """Set flow run ``run_id`` Crashed with ``message`` (its process is known to be gone:
    after a SIGKILL of the whole platform, Prefect still shows it Running).

    Returns:
        Prefect's orchestration status (``ACCEPT`` when it took effect).
    """
    from prefect.states import Crashed

    async def go() -> str:
        async with _client() as client:
            state: Any = Crashed(message=message)
            result: Any = await client.set_flow_run_state(_uuid(run_id), state, force=True)
            return str(result.status.value)

    return _run(go())
