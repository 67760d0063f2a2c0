"""Render ``prefect.yaml`` from the catalogue, so ``prefect deploy --all`` and Quayside's own
registration describe the same deployments. ``quayside deployments render`` writes it; a test
fails when the committed file drifts from the catalogue."""

from __future__ import annotations

from typing import Any

import yaml

from quayside.deployments.catalogue import CATALOGUE, DeploymentSpec

WORK_POOL = "quayside"

HEADER = (
    "# Generated from quayside/deployments/catalogue.py by `quayside deployments render`;"
    " do not edit.\n"
    "# `quayside up` registers these deployments itself; `prefect deploy --all` also works\n"
    "# from the project root with QUAYSIDE_PROJECT_DIR set to it.\n"
)


def _deployment(spec: DeploymentSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "entrypoint": spec.entrypoint,
        "tags": list(spec.tags),
        "parameters": dict(spec.parameters),
        "work_pool": {
            "name": WORK_POOL,
            "job_variables": {
                "env": {"PREFECT__FLOW_ENTRYPOINT": spec.module_entrypoint},
                "working_dir": "{{ $QUAYSIDE_PROJECT_DIR }}",
            },
        },
    }
    if spec.concurrency_limit is not None:
        entry["concurrency_limit"] = spec.concurrency_limit
    if spec.cron:
        entry["schedules"] = [{"cron": c, "timezone": spec.timezone} for c in spec.cron]
    return entry


def render() -> str:
    """The full text of prefect.yaml for the current catalogue."""
    doc = {
        "name": "quayside",
        "prefect-version": "3.8.8",
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $QUAYSIDE_PROJECT_DIR }}"
                }
            }
        ],
        "deployments": [_deployment(s) for s in CATALOGUE],
    }
    return HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
