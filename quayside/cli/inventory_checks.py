"""What ``quayside check`` adds to the inventory's own validation: the task templates checked
against the flow catalogue (deployments and their parameters), and warnings about settings
that are valid but probably not what the operator means.

No Prefect import: the catalogue is data and flow parameters are read from source
(:mod:`quayside.deployments.parameters`), so ``check`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quayside.deployments.catalogue import CATALOGUE, DeploymentSpec, by_name
from quayside.deployments.parameters import FlowParameters, flow_parameters
from quayside.errors import NotFoundError
from quayside.inventory import Inventory
from quayside.inventory.task_templates import RESERVED_PARAMETERS, TaskTemplate


@dataclass
class CheckReport:
    """Problems (``key.path: problem``): errors make ``check`` fail, warnings do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _spec(deployment: str, where: str, report: CheckReport) -> DeploymentSpec | None:
    try:
        spec = by_name(deployment)
    except NotFoundError:
        known = ", ".join(s.name for s in CATALOGUE if s.triggerable)
        report.errors.append(
            f"{where}: no deployment {deployment!r} in the catalogue (task API: {known})"
        )
        return None
    if not spec.triggerable:
        report.errors.append(
            f"{where}: {spec.name} cannot be started through the task API (not triggerable)"
        )
        return None
    return spec


def _template(
    template: TaskTemplate, where: str, spec: DeploymentSpec, params: FlowParameters
) -> list[str]:
    taken = ", ".join(sorted(params.names - RESERVED_PARAMETERS))
    errors = [
        f"{where}.parameters.{name}: not a parameter of {spec.name} (parameters: {taken})"
        for name in template.parameters
        if name not in params.names
    ]
    errors += [
        f"{where}.args.{arg}: {mapping.parameter} is not a parameter of {spec.name} "
        f"(parameters: {taken})"
        for arg, mapping in template.args.items()
        if mapping.parameter is not None and mapping.parameter not in params.names
    ]
    if template.other_args == "refuse":
        errors += [
            f"{where}: {spec.name} needs {name}: fix it under {where}.parameters or map an "
            f"argument to it in {where}.args"
            for name in sorted(params.required)
            if not template.sets(name)
        ]
    return errors


def check_inventory(inventory: Inventory) -> CheckReport:
    """Check ``inventory`` (already validated) against the catalogue.

    Errors: a template's deployment missing or not triggerable, a parameter or argument
    mapping naming no parameter of it, a required parameter no template sets, an alias of a
    missing deployment, an unknown ``timezone``. Warnings: task templates (or aliases) without
    an explicit ``timezone`` (``exec_time`` is then read as UTC), deprecated ``task_aliases``.
    """
    report = CheckReport()
    for key, template in inventory.task_templates.items():
        where = f"task_templates.{key}"
        spec = _spec(template.deployment, f"{where}.deployment", report)
        if spec is not None:
            report.errors += _template(template, where, spec, flow_parameters(spec))
    for key, deployment in inventory.task_aliases.items():
        where = f"task_aliases.{key}"
        if _spec(deployment, where, report) is not None:
            report.warnings.append(
                f"{where}: deprecated; write it as a task template: task_templates: "
                f'{{"{key}": {{deployment: {deployment}, args: {{...}}}}}} (the older '
                "platform's arguments mapped explicitly)"
            )
    try:
        ZoneInfo(inventory.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        report.errors.append(
            f"timezone: unknown time zone {inventory.timezone[:64]!r}; use an IANA name such "
            "as Asia/Shanghai or UTC"
        )
    templated = inventory.task_templates or inventory.task_aliases
    if templated and "timezone" not in inventory.model_fields_set:
        report.warnings.append(
            "timezone: not set, so the task API reads an exec_time without an offset as UTC; "
            "the older platform's scripts send local time (in Asia/Shanghai a run would start "
            "8 h late): set timezone to your operators' zone, e.g. timezone: Asia/Shanghai"
        )
    return report
