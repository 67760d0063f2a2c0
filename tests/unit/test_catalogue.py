"""The flow catalogue: every entry imports, names are unique and match the flow, and
prefect.yaml is exactly what the catalogue renders."""

from __future__ import annotations

import importlib
import importlib.util

import pytest
from prefect import Flow

from quayside.deployments.catalogue import CATALOGUE, DeploymentSpec, by_name
from quayside.deployments.render import render
from quayside.errors import NotFoundError
from testbed import PROJECT_DIR

ROOT = PROJECT_DIR


def test_names_unique() -> None:
    names = [s.name for s in CATALOGUE]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda s: s.name)
def test_entry_imports_and_matches_flow(spec: DeploymentSpec) -> None:
    path = ROOT / spec.module_path
    assert path.is_file(), f"{spec.name}: {path} missing"
    module_spec = importlib.util.spec_from_file_location(f"_cat_{spec.name}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    flow = getattr(module, spec.function_name)
    assert isinstance(flow, Flow)
    assert flow.name == spec.flow_name
    params = flow.parameters.properties
    for key in spec.parameters:
        assert key in params, f"{spec.name}: default parameter {key!r} is not a flow parameter"
    assert flow.description, f"{spec.name}: the flow needs a description for the UI"


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda s: s.name)
def test_runs_import_the_flow_by_name_from_the_project_dir(spec: DeploymentSpec) -> None:
    """The engine loads a run's flow from ``PREFECT__FLOW_ENTRYPOINT`` (Prefect's own import
    path rules), so it must name the entry's flow, and runs start in the project dir."""
    from prefect.flows import load_flow_from_entrypoint

    from quayside.deployments.register import run_job_variables

    variables = run_job_variables(spec, str(ROOT))
    assert variables["working_dir"] == str(ROOT)
    entrypoint = variables["env"]["PREFECT__FLOW_ENTRYPOINT"]
    assert ".py" not in entrypoint, "an import path, not a file (that would run it again)"
    flow = load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
    module = importlib.import_module(entrypoint.split(":", 1)[0])
    assert flow is getattr(module, spec.function_name), "the module's own flow object"
    assert flow.name == spec.flow_name


def test_prefect_yaml_in_sync() -> None:
    assert (ROOT / "prefect.yaml").read_text() == render(), (
        "prefect.yaml is stale: run `quayside deployments render --write`"
    )


def test_by_name() -> None:
    spec = CATALOGUE[0]
    assert by_name(spec.name) is spec
    assert by_name(spec.full_name) is spec
    with pytest.raises(NotFoundError, match="known: "):
        by_name("no-such-flow")
