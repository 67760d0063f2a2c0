"""A run's parameters checked against its deployment before the run is created.

Prefect validates a new run's parameters against the deployment's schema too, but answers with
its own wording (``Validation failed for field 'x'``) after the caller may already have been
told something else; here every problem is a 400 naming the field, found before anything is
recorded: a parameter the deployment does not take, one Quayside sets itself, a required one
missing, a value of the wrong type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from quayside.deployments.catalogue import DeploymentSpec
from quayside.errors import InputError
from quayside.gateway.context import GatewayContext
from quayside.inventory.task_templates import RESERVED_PARAMETERS


def refuse_foreign(deployment: str, params: Mapping[str, Any], names: frozenset[str]) -> None:
    """Refuse what the deployment does not take and what Quayside sets itself, naming each.

    Raises:
        InputError: ``args: name: ...`` for each, with the accepted parameters as the hint.
    """
    problems = [
        f"{name}: set by Quayside (the token's user, the environment's policy), not by the caller"
        for name in sorted(params)
        if name in RESERVED_PARAMETERS
    ]
    problems += [
        f"{name}: not a parameter of {deployment}"
        for name in sorted(params)
        if name not in names and name not in RESERVED_PARAMETERS
    ]
    if problems:
        taken = ", ".join(sorted(n for n in names if n not in RESERVED_PARAMETERS))
        raise InputError("args: " + "; ".join(problems), hint=f"accepted parameters: {taken}")


def _expected(schema: Mapping[str, Any]) -> str:
    """What a property's schema accepts, in words (``integer or string or null``)."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        kinds = [_expected(o) for o in options if isinstance(o, Mapping)]
        return " or ".join(k for k in kinds if k) or "another value"
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"a list of {_expected(schema['items'])}"
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return str(kind) if kind else ""


def type_problems(schema: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """``field: must be ...`` for each value the deployment's schema refuses (Prefect's own
    validator, so the answer is Prefect's); values are never echoed."""
    from prefect.utilities.schema_tools.validation import validate

    properties = schema.get("properties") or {}
    problems: list[str] = []
    seen: set[str] = set()
    for error in validate(dict(params), dict(schema), ignore_required=True):
        path = [str(p) for p in error.absolute_path]
        field = path[0] if path else "parameters"
        if field in seen:
            continue
        seen.add(field)
        where = field + "".join(f"[{p}]" for p in path[1:])
        expected = _expected(properties.get(field) or {}) if len(path) == 1 else ""
        if error.validator in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
            bound = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">"}.get(
                str(error.validator), "<"
            )
            problems.append(f"{where}: must be {bound} {error.validator_value}")
        elif expected:
            problems.append(f"{where}: must be {expected}")
        else:
            problems.append(f"{where}: not an accepted value ({error.validator})")
    return problems


def check_parameters(
    ctx: GatewayContext,
    spec: DeploymentSpec,
    params: Mapping[str, Any],
    *,
    missing_message: Callable[[Iterable[str]], str] | None = None,
) -> None:
    """Check ``params`` (with the catalogue's defaults) against the deployment's schema.

    Args:
        ctx: the gateway context (the schema is read from Prefect, cached briefly).
        spec: the catalogue entry.
        params: the run's parameters, as they will be sent.
        missing_message: words for missing required parameters (how the caller supplies
            them); default ``name: required by <deployment>``.

    Raises:
        InputError: missing required parameters, or values of the wrong type, each named.
    """
    schema = ctx.parameter_schema(spec.full_name)
    merged = {**spec.parameters, **params}
    missing = sorted(ctx.required_parameters(spec.full_name) - set(merged))
    if missing:
        message = (
            missing_message(missing)
            if missing_message is not None
            else "; ".join(f"{name}: required by {spec.name}" for name in missing)
        )
        raise InputError(message, hint=f"{spec.name} needs {', '.join(missing)}")
    problems = type_problems(schema, merged)
    if problems:
        raise InputError("; ".join(problems), hint="fix the value's type and send it again")
