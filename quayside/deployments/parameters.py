"""The parameters of a catalogue entry's flow, read from its source without importing it.

``quayside check`` validates task templates against the deployments they start; importing a
flow imports Prefect (seconds), so the flow function's signature is read with :mod:`ast`
instead: every argument is a parameter, and one without a default (or whose default is a
pydantic ``Field(...)`` without ``default``) is required, as Prefect's parameter schema says
(``tests/unit/test_catalogue_parameters.py`` compares the two for every entry).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from quayside.deployments.catalogue import DeploymentSpec
from quayside.project_root import PROJECT_DIR


@dataclass(frozen=True)
class FlowParameters:
    """A flow's parameter names, and those a run must be given."""

    names: frozenset[str]
    required: frozenset[str]


def _required(default: ast.expr | None) -> bool:
    if default is None:
        return True
    if isinstance(default, ast.Call):
        func = default.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "Field":
            given = {k.arg for k in default.keywords}
            first = default.args[0] if default.args else None
            ellipsis = isinstance(first, ast.Constant) and first.value is Ellipsis
            return (first is None or ellipsis) and not given & {"default", "default_factory"}
    return False


def flow_parameters(spec: DeploymentSpec, root: Path = PROJECT_DIR) -> FlowParameters:
    """The parameters of ``spec``'s flow function, the catalogue's defaults counting as given.

    Raises:
        LookupError: the entrypoint's file or function is missing.
    """
    path = root / spec.module_path
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except OSError as e:
        raise LookupError(f"{spec.name}: cannot read {path} ({e.strerror})") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            node.name == spec.function_name
        ):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            padding: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
            defaults = [*padding, *args.defaults]
            pairs = [*zip(positional, defaults, strict=True)]
            pairs += [*zip(args.kwonlyargs, args.kw_defaults, strict=True)]
            names = frozenset(a.arg for a, _ in pairs)
            required = frozenset(
                a.arg for a, d in pairs if _required(d) and a.arg not in spec.parameters
            )
            return FlowParameters(names, required)
    raise LookupError(f"{spec.name}: no function {spec.function_name} in {path}")
