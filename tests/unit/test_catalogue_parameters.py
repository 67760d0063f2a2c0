"""``quayside.deployments.parameters`` reads a flow's parameters from its source (``quayside check``
must not import Prefect): for every catalogue entry it agrees with Prefect's own schema."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from prefect import Flow

from quayside.deployments.catalogue import CATALOGUE, DeploymentSpec
from quayside.deployments.parameters import flow_parameters
from testbed import PROJECT_DIR

ROOT = PROJECT_DIR


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda s: s.name)
def test_source_parameters_match_prefects_schema(spec: DeploymentSpec) -> None:
    module_spec = importlib.util.spec_from_file_location(
        f"_params_{spec.name}", ROOT / spec.module_path
    )
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    flow = getattr(module, spec.function_name)
    assert isinstance(flow, Flow)
    schema = flow.parameters
    found = flow_parameters(spec)
    assert found.names == set(schema.properties)
    assert found.required == set(schema.required or []) - set(spec.parameters)


def test_a_missing_function_is_named(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "x.py").write_text(
        "def other(a, b=Field(1), *, c=Field(description='')): ...\n"
    )
    spec = DeploymentSpec(name="x", flow_name="x", entrypoint="flows/x.py:other", description="")
    found = flow_parameters(spec, tmp_path)
    assert (found.names, found.required) == ({"a", "b", "c"}, {"a", "c"})
    missing = DeploymentSpec(name="y", flow_name="y", entrypoint="flows/x.py:nope", description="")
    with pytest.raises(LookupError, match="no function nope"):
        flow_parameters(missing, tmp_path)
