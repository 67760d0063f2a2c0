"""Registration: the catalogue's only side effect. Creates the process work pool, registers
Quayside's block types and one Prefect deployment per catalogue entry."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any, cast

from prefect import Flow, flow
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.schedules import Cron

import blocks
from deployments.catalogue import CATALOGUE, DeploymentSpec
from deployments.render import WORK_POOL


async def ensure_work_pool(name: str = WORK_POOL) -> None:
    """Create the ``process`` work pool ``name`` unless it exists."""
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def block_types() -> list[type[Block]]:
    """Every Block subclass defined in the ``blocks`` package."""
    found: list[type[Block]] = []
    for info in pkgutil.iter_modules(blocks.__path__):
        module = importlib.import_module(f"blocks.{info.name}")
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


def register_deployment(spec: DeploymentSpec, project_dir: Path, pool: str = WORK_POOL) -> str:
    """Create or update the Prefect deployment for ``spec``; returns its id."""
    source = cast(
        "Flow[..., Any]", flow.from_source(source=str(project_dir), entrypoint=spec.entrypoint)
    )
    schedules = [Cron(c, timezone=spec.timezone) for c in spec.cron]
    deployment_id = source.deploy(
        name=spec.name,
        work_pool_name=pool,
        parameters=dict(spec.parameters),
        description=spec.description,
        tags=list(spec.tags),
        concurrency_limit=spec.concurrency_limit,
        schedules=schedules or None,
        build=False,
        push=False,
        print_next_steps=False,
        ignore_warnings=True,
    )
    return str(deployment_id)


def register_all(project_dir: Path, pool: str = WORK_POOL) -> dict[str, str]:
    """Register every catalogue entry; returns ``{full_name: deployment_id}``."""
    return {spec.full_name: register_deployment(spec, project_dir, pool) for spec in CATALOGUE}
