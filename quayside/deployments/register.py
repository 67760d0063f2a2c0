"""Registration: the catalogue's only side effect. Creates the process work pool, registers
Quayside's block types and one Prefect deployment per catalogue entry."""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import pkgutil
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from prefect import Flow
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists
from prefect.schedules import Cron

from quayside.deployments.catalogue import CATALOGUE, DeploymentSpec
from quayside.deployments.render import WORK_POOL

#: How the flow-run command of the pool ends (see :func:`launcher_command`).
LAUNCHER_MODULE = "quayside.stack.launcher"


def launcher_command(python: str = sys.executable) -> str:
    """The pool's flow-run command: :mod:`quayside.stack.launcher`, which asks the fork server
    started by ``quayside up`` to run the flow run in a pre-imported child (and falls back to
    ``python -m prefect.engine`` when there is none)."""
    return shlex.join([python, "-m", LAUNCHER_MODULE])


def flow_run_command(env: Mapping[str, str]) -> str | None:
    """The pool's flow-run command: ``QUAYSIDE_FLOW_RUN_COMMAND`` if set (empty: Prefect's
    own start), else the launcher, or Prefect's own start (None: a workspace supervisor
    process that starts ``python -m prefect.engine``) when ``QUAYSIDE_FORKSERVER=0`` (then
    ``quayside up`` starts no fork server either)."""
    if "QUAYSIDE_FLOW_RUN_COMMAND" in env:
        return env["QUAYSIDE_FLOW_RUN_COMMAND"].strip() or None
    return None if env.get("QUAYSIDE_FORKSERVER", "1") == "0" else launcher_command()


def process_job_template(command: str | None) -> dict[str, Any]:
    """Prefect's default ``process`` base job template with ``command`` as the default
    flow-run command (None: Prefect's own ``python -m prefect.engine``)."""
    from prefect.workers.process import ProcessWorker

    template = copy.deepcopy(ProcessWorker.get_default_base_job_template())
    template["variables"]["properties"]["command"]["default"] = command
    return template


def _ours(command: Any) -> bool:
    return command is None or (isinstance(command, str) and command.endswith(LAUNCHER_MODULE))


_FROM_ENV = "from-env"


async def ensure_work_pool(name: str = WORK_POOL, command: str | None = _FROM_ENV) -> None:
    """Create the ``process`` work pool ``name`` with ``command`` (default: from
    :func:`flow_run_command`) as its flow-run command; on an existing pool, set it unless
    someone configured a command of their own (that one is kept)."""
    if command == _FROM_ENV:
        command = flow_run_command(os.environ)
    template = process_job_template(command)
    async with get_client() as client:
        try:
            await client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
        except ObjectAlreadyExists:
            pool = await client.read_work_pool(name)
            props = pool.base_job_template.get("variables", {}).get("properties", {})
            current = props.get("command", {}).get("default")
            if current != command and _ours(current):
                await client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))


def block_types() -> list[type[Block]]:
    """Every Block subclass defined in the ``blocks`` package."""
    import quayside.blocks

    found: list[type[Block]] = []
    for info in pkgutil.iter_modules(quayside.blocks.__path__):
        module = importlib.import_module(f"quayside.blocks.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Block) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


async def register_blocks() -> list[str]:
    """Register every Quayside block type and schema; returns their slugs."""
    slugs = []
    for block_type in block_types():
        await block_type.register_type_and_schema()
        slugs.append(block_type.get_block_type_slug())
    return slugs


def run_job_variables(spec: DeploymentSpec, project_dir: str) -> dict[str, Any]:
    """The deployment's job variables for the process worker: its runs start in the project
    directory (what the deployment's pull step would set) with ``PREFECT__FLOW_ENTRYPOINT``
    naming the flow as an import path, as Prefect's own runner does for served flows. The
    engine then imports the module by name -- in a fork-server child it is already imported
    -- instead of reading the deployment, running its pull step and executing the flow's
    file again as a new module (about 0.1-0.2 s of every run's start)."""
    return {
        "env": {"PREFECT__FLOW_ENTRYPOINT": spec.module_entrypoint},
        "working_dir": project_dir,
    }


async def register_deployment(
    spec: DeploymentSpec, project_dir: Path, pool: str = WORK_POOL
) -> str:
    """Create or update the Prefect deployment for ``spec``; returns its id.

    Raises:
        Exception: whatever Prefect raised (a deployment that cannot be registered stops the
            registration, it is never left out silently).
    """
    source = cast(
        "Flow[..., Any]",
        await Flow.afrom_source(source=str(project_dir), entrypoint=spec.entrypoint),
    )
    schedules = [Cron(c, timezone=spec.timezone) for c in spec.cron]
    deployment = await source.ato_deployment(
        name=spec.name,
        work_pool_name=pool,
        job_variables=run_job_variables(spec, str(project_dir)),
        parameters=dict(spec.parameters),
        description=spec.description,
        tags=list(spec.tags),
        concurrency_limit=spec.concurrency_limit,
        schedules=schedules or None,
    )
    return str(await deployment.aapply(work_pool_name=pool))


async def register_all(project_dir: Path, pool: str = WORK_POOL) -> dict[str, str]:
    """Register every catalogue entry, one after the other in one event loop (on the embedded
    SQLite database, registering them at once was slower: 8.3 s against 2.2 s for eight);
    returns ``{full_name: deployment_id}``."""
    return {
        spec.full_name: await register_deployment(spec, project_dir, pool) for spec in CATALOGUE
    }
