"""Synchronous wrappers over Prefect's client for the handful of things Quayside asks of it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterIdempotencyKey,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
)
from prefect.client.schemas.objects import FlowRun, State
from prefect.client.schemas.sorting import LogSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Scheduled, to_state_create

from quayside.api_auth import APIAuthError, client_auth_string, refused_hint
from quayside.deployments.catalogue import by_name
from quayside.errors import InputError, NotFoundError, QuaysideError
from quayside.settings import load_settings

T = TypeVar("T")

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class PrefectUnavailable(QuaysideError):
    """The Prefect API did not answer."""

    hint = (
        "start the platform: `make up` (or `quayside up`) with the same QUAYSIDE_HOME and "
        "QUAYSIDE_PREFECT_PORT; or set PREFECT_API_URL to the running platform's API"
    )


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

    @property
    def final(self) -> bool:
        """Whether the run had ended (completed, failed, crashed or cancelled)."""
        return self.state_type in FINAL_STATES


@dataclass(frozen=True)
class RunStatus:
    id: str
    name: str
    state_type: str
    state_name: str
    message: str | None
    parameters: dict[str, Any]
    tags: tuple[str, ...]

    @property
    def final(self) -> bool:
        return self.state_type in FINAL_STATES

    @property
    def paused(self) -> bool:
        return self.state_type == "PAUSED"


def _in_fresh_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion; from a thread that already runs an event loop (an async
    web handler, Playwright's sync API), in a helper thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quayside-runs") as pool:
        return pool.submit(asyncio.run, coro).result()


def _run(
    coro: Coroutine[Any, Any, T], runner: Callable[[Coroutine[Any, Any, T]], T] = _in_fresh_loop
) -> T:
    """Run ``coro`` (with ``runner``: default, in an event loop of its own) and turn Prefect's
    and the network's errors into Quayside's."""
    try:
        return runner(coro)
    except PrefectHTTPStatusError as e:
        if e.response is not None and e.response.status_code == 401:
            url = api_url()
            raise APIAuthError(
                f"the Prefect API at {url} refused Quayside's credentials (401 Unauthorized)",
                hint=refused_hint(url, load_settings(), os.environ),
            ) from e
        refused = parameter_error(e.response.text) if e.response is not None else None
        if refused is not None:
            raise refused from e
        detail = e.response.text[:300] if e.response is not None else str(e)
        raise QuaysideError(f"Prefect API refused the request: {detail}") from e
    except OSError as e:
        raise PrefectUnavailable(
            f"the Prefect API at {api_url()} is not reachable ({e.strerror or e})"
        ) from e
    except Exception as e:
        if type(e).__name__ in {"ConnectError", "ConnectTimeout", "ReadTimeout"}:
            raise PrefectUnavailable(f"the Prefect API at {api_url()} is not reachable") from e
        raise


_PARAMETER_REFUSAL = re.compile(
    r"Validation failed(?: for field '(?P<field>[^']{1,100})')?\. "
    r"Failure reason: (?P<why>.{1,300})",
    re.S,
)


def parameter_error(body: str) -> InputError | None:
    """Prefect's refusal of a run's parameters (its schema check, HTTP 409 ``Error creating
    flow run: Validation failed for field 'x'. Failure reason: ...``) as an InputError naming
    the field; None for any other answer."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return None
    found = _PARAMETER_REFUSAL.search(detail) if isinstance(detail, str) else None
    if found is None:
        return None
    field = found["field"] or "parameters"
    return InputError(
        f"{field}: {found['why'].strip()[:200]}",
        hint="check the value's type against the deployment's parameters (Prefect UI: the "
        "deployment's Parameters tab)",
    )


def api_url() -> str:
    """The Prefect API Quayside talks to: PREFECT_API_URL *now* (Prefect's own settings are
    read once at import; the CLI, the gateway and tests may point elsewhere later), else
    Prefect's configured one (its profile), else the platform's own (``quayside up``)."""
    from prefect.settings import get_current_settings

    return (
        os.environ.get("PREFECT_API_URL")
        or get_current_settings().api.url
        or load_settings().prefect_api_url
    )


def prefect_client(url: str | None = None) -> PrefectClient:
    """A Prefect client for ``url`` (default :func:`api_url`) that authenticates as
    :func:`quayside.api_auth.client_auth_string` says (or with PREFECT_API_KEY).

    Raises:
        APIAuthError: the platform's auth string file exists but cannot be read.
    """
    from prefect.settings import get_current_settings

    target = url or api_url()
    configured = get_current_settings().api
    auth = client_auth_string(
        target,
        load_settings(),
        os.environ,
        configured.auth_string.get_secret_value() if configured.auth_string else None,
    )
    key = os.environ.get("PREFECT_API_KEY") or (
        configured.key.get_secret_value() if configured.key else None
    )
    return PrefectClient(api=target, auth_string=auth, api_key=key)


def _client() -> PrefectClient:
    return prefect_client()


def ui_url_for(run_id: str) -> str:
    """The Prefect UI page of a flow run."""
    api = api_url().rstrip("/")
    base = os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api")
    return f"{base}/runs/flow-run/{run_id}"


def _uuid(run_id: str) -> UUID:
    try:
        return UUID(str(run_id))
    except ValueError:
        raise InputError(f"'{run_id}' is not a flow run id (expected a UUID)") from None


async def _start(
    client: PrefectClient,
    deployment: str,
    parameters: dict[str, Any],
    idempotency_key: str | None,
    scheduled_at: datetime | None,
    tags: list[str],
    name: str | None,
) -> RunHandle:
    spec = by_name(deployment)
    try:
        dep = await client.read_deployment_by_name(spec.full_name)
    except ObjectNotFound:
        raise NotFoundError(
            f"deployment '{spec.full_name}' is not registered with Prefect",
            hint="`quayside up` registers the catalogue; is the platform running?",
        ) from None
    state: State[Any] = Scheduled(scheduled_time=scheduled_at) if scheduled_at else Scheduled()
    # what PrefectClient.create_flow_run_from_deployment sends, keeping the status code: the
    # server answers 201 for a new run and 200 with the existing one for a known idempotency key
    request = DeploymentFlowRunCreate(
        parameters=parameters,
        context={},
        state=to_state_create(state),
        tags=list(tags),
        name=name,
        idempotency_key=idempotency_key,
    )
    response = await client.request(
        "POST",
        "/deployments/{id}/create_flow_run",
        path_params={"id": dep.id},
        json=request.model_dump(mode="json", exclude_unset=True),
    )
    run = FlowRun.model_validate(response.json())
    when = run.state.state_details.scheduled_time if run.state else None
    return RunHandle(
        str(run.id),
        run.name,
        spec.full_name,
        ui_url_for(str(run.id)),
        when,
        created=response.status_code == 201,
        state_type=run.state.type.value if run.state else "PENDING",
        state_name=(run.state.name or run.state.type.value) if run.state else "Pending",
    )


def start_run(
    deployment: str,
    parameters: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    scheduled_at: datetime | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
) -> RunHandle:
    """Create a flow run of catalogue entry ``deployment`` through the Prefect API.

    Args:
        deployment: catalogue name (``git-deploy``) or ``flow/deployment``.
        parameters: flow parameters, merged over the deployment's defaults.
        idempotency_key: the same key never creates a second run.
        scheduled_at: run then instead of now.
        tags: extra tags on the run.
        name: run name (Prefect generates one if omitted).

    Returns:
        The run's id, name and UI URL.

    Raises:
        NotFoundError: unknown catalogue entry or unregistered deployment.
        PrefectUnavailable: the API does not answer.
    """

    async def go() -> RunHandle:
        async with _client() as client:
            return await _start(
                client,
                deployment,
                parameters or {},
                idempotency_key,
                scheduled_at,
                tags or [],
                name,
            )

    return _run(go())


async def _read(client: PrefectClient, run_id: str) -> RunStatus:
    try:
        run = await client.read_flow_run(_uuid(run_id))
    except ObjectNotFound:
        raise NotFoundError(f"no flow run '{run_id}'") from None
    state = run.state
    return RunStatus(
        id=str(run.id),
        name=run.name,
        state_type=state.type.value if state else "PENDING",
        state_name=(state.name or state.type.value) if state else "Pending",
        message=state.message if state else None,
        parameters=dict(run.parameters),
        tags=tuple(run.tags),
    )


def read_run(run_id: str) -> RunStatus:
    """The current state of flow run ``run_id``.

    Raises:
        NotFoundError: no such run. InputError: not a UUID.
    """

    async def go() -> RunStatus:
        async with _client() as client:
            return await _read(client, run_id)

    return _run(go())


def find_run_by_key(idempotency_key: str) -> RunStatus | None:
    """The flow run created with ``idempotency_key``, if there is one."""

    async def go() -> RunStatus | None:
        async with _client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    idempotency_key=FlowRunFilterIdempotencyKey(any_=[idempotency_key])
                ),
                limit=1,
            )
            return await _read(client, str(runs[0].id)) if runs else None

    return _run(go())


def resume_run(run_id: str, run_input: dict[str, Any] | None = None) -> str:
    """Resume a paused flow run, with ``run_input`` for its RunInput form.

    Returns:
        Prefect's orchestration status (``ACCEPT``, ``REJECT``, ``ABORT``, ``WAIT``).
    """

    async def go() -> str:
        async with _client() as client:
            result = await client.resume_flow_run(_uuid(run_id), run_input=run_input)
            return str(result.status.value)

    return _run(go())


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    level: int
    message: str


#: Prefect ships a run's logs in batches (every ~2 s) and flushes the last batch as the run
#: process exits, so logs can arrive after newer ones and after the final state.
LOG_LATENESS = timedelta(seconds=15)
LOG_PAGE = 200
#: after the final state, read until the engine's own "Finished in state" line for the flow
#: run has arrived (it is logged after the final state and shipped when the run's process
#: ends: :func:`quayside.stack.forkserver.flush_prefect`), every END_POLL_S, for at most this
#: long (a crashed run, or one logging below INFO, has no such line)
END_GRACE_S = 0.8
END_POLL_S = 0.15


class _Session:
    """One event loop, in one helper thread, and one Prefect client on it, for a sequence of
    calls: a followed run is polled every half second, and a client per poll cost about 0.1 s
    of CPU (mostly building its TLS context, even for an http:// URL)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quayside-follow")
        self._loop = asyncio.new_event_loop()
        self._client: PrefectClient | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the session's loop (from any thread, a running loop's too)."""
        return self._pool.submit(self._loop.run_until_complete, coro).result()

    async def client(self) -> PrefectClient:
        if self._client is None:
            client = _client()
            await client.__aenter__()
            self._client = client
        return self._client

    def close(self) -> None:
        try:
            if self._client is not None:
                self.run(self._client.__aexit__(None, None, None))
        except Exception:  # closing a broken connection: nothing left to do
            pass
        finally:
            self._pool.submit(self._loop.close).result()
            self._pool.shutdown()


def follow_run(
    run_id: str,
    *,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
    on_state: Callable[[RunStatus], None] | None = None,
) -> Iterator[LogLine]:
    """Yield the run's log lines as they appear until it reaches a final state and its last
    logs are in; ``on_state`` is called on every state change (the final state included,
    before this returns). Paused and suspended runs are followed too (they wait for approval).

    Logs are read by time window (everything newer than the newest seen, minus a lateness
    margin) and de-duplicated by id, so a late batch is never skipped. One Prefect client
    serves every poll.

    Raises:
        QuaysideError: still not final after ``timeout_s``.
    """
    seen: set[str] = set()
    newest: datetime | None = None
    flow_finished_logged = False
    last_state: tuple[str, str] | None = None
    deadline = time.monotonic() + timeout_s if timeout_s else None
    session = _Session()

    async def poll() -> tuple[RunStatus, list[LogLine]]:
        nonlocal newest, flow_finished_logged
        client = await session.client()
        status = await _read(client, run_id)
        window = LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[_uuid(run_id)]),
            timestamp=(LogFilterTimestamp(after_=newest - LOG_LATENESS) if newest else None),
        )
        lines: list[LogLine] = []
        offset = 0
        while True:
            page = await client.read_logs(
                log_filter=window, sort=LogSort.TIMESTAMP_ASC, limit=LOG_PAGE, offset=offset
            )
            for log in page:
                if str(log.id) in seen:
                    continue
                seen.add(str(log.id))
                if log.task_run_id is None and log.message.startswith("Finished in state"):
                    flow_finished_logged = True
                lines.append(LogLine(log.timestamp, log.level, log.message))
                newest = log.timestamp if newest is None else max(newest, log.timestamp)
            if len(page) < LOG_PAGE:
                break
            offset += LOG_PAGE
        lines.sort(key=lambda line: line.timestamp)
        return status, lines

    ended_at: float | None = None
    try:
        while True:
            status, lines = _run(poll(), session.run)
            yield from lines
            if (status.state_type, status.state_name) != last_state:
                last_state = (status.state_type, status.state_name)
                if on_state is not None:
                    on_state(status)
            if status.final:
                ended_at = ended_at or time.monotonic()
                if flow_finished_logged or time.monotonic() - ended_at > END_GRACE_S:
                    return
            elif deadline is not None and time.monotonic() > deadline:
                raise QuaysideError(
                    f"run {run_id} still {status.state_name} after {timeout_s:.0f}s",
                    hint=f"follow it in the UI: {ui_url_for(run_id)}",
                )
            time.sleep(END_POLL_S if ended_at is not None else poll_s)
    finally:
        session.close()


def cancel_run(run_id: str, message: str) -> str:
    """Cancel flow run ``run_id`` (a scheduled run never starts; a running one is stopped by
    its worker) with ``message`` as the state message.

    Returns:
        Prefect's orchestration status (``ACCEPT`` when it took effect).
    """
    from prefect.states import Cancelled

    async def go() -> str:
        async with _client() as client:
            state: State[Any] = Cancelled(message=message)
            result = await client.set_flow_run_state(_uuid(run_id), state, force=True)
            return str(result.status.value)

    return _run(go())


def delete_run(run_id: str) -> None:
    """Delete flow run ``run_id`` (a submission refused after its run was created, undone)."""

    async def go() -> None:
        async with _client() as client:
            try:
                await client.delete_flow_run(_uuid(run_id))
            except ObjectNotFound:
                return

    _run(go())
