"""A task's ``args`` through its task template: the parameters of the run it asks for.

Each argument is renamed to its parameter, matched case-insensitively against the inventory's
names (``case: fold``: ``APP_NAME: 'Web'`` finds app ``web``), checked (``GIT_URL`` must name the
app's repository) or dropped (``ignore``); the template's fixed parameters are added and cannot
be overridden. Every problem names the argument (``args.GIT_URL: ...``), all at once. Pure: no
Prefect, no ledger; the gateway checks the result against the deployment afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from quayside.errors import InputError
from quayside.inventory import Inventory
from quayside.inventory.task_templates import TaskTemplate
from quayside.triggers.literal import Value
from quayside.triggers.repos import repo_path, same_project


def _shown(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:limit])


def match_name(value: str, names: Iterable[str]) -> list[str]:
    """The names ``value`` stands for: itself if it is one, else those equal to it ignoring
    case (more than one: ambiguous)."""
    known = list(names)
    if value in known:
        return [value]
    return [name for name in known if name.casefold() == value.casefold()]


def map_arguments(
    template: TaskTemplate,
    args: Mapping[str, Value],
    inventory: Inventory,
    *,
    label: str,
    where: str | None = None,
) -> dict[str, Any]:
    """The run's parameters for a task's ``args`` under ``template``.

    Args:
        template: the task template (or the implicit one of a deployment name).
        args: the task's parsed ``args``.
        inventory: the validated inventory (names to fold against, the app's repo).
        label: how messages name the template (``task template 1``).
        where: the template's key path in quayside.yaml (``task_templates.1``), for hints.

    Returns:
        The template's fixed parameters with the mapped arguments added.

    Raises:
        InputError: one ``args.NAME: problem`` per refused argument (not declared, setting a
            fixed parameter, two arguments setting one parameter differently, no such app or
            environment, a repository that is not the app's), all in one message.
    """
    problems: list[str] = []
    params: dict[str, Any] = {}
    set_by: dict[str, str] = {}
    folded: dict[str, str] = {}
    checks: list[tuple[str, Value]] = []
    for arg, value in args.items():
        mapping = template.args.get(arg)
        if mapping is None and template.other_args == "refuse":
            problems.append(f"args.{arg}: not an argument of {label}")
            continue
        if mapping is not None and mapping.ignore:
            continue
        if mapping is not None and mapping.check is not None:
            checks.append((arg, value))
            continue
        target = mapping.parameter if mapping is not None and mapping.parameter else arg
        if target in template.parameters:
            problems.append(
                f"args.{arg}: {target} is fixed by {label} "
                f"({target}={_shown(template.parameters[target])}); leave it out"
            )
            continue
        if target in params and params[target] != value:
            problems.append(
                f"args.{arg}: sets {target} like args.{set_by[target]}, to another value"
            )
            continue
        params[target], set_by[target] = value, arg
        if mapping is not None and mapping.case == "fold":
            folded[target] = arg
    merged: dict[str, Any] = {**template.parameters, **params}
    for parameter in ("app", "env"):
        if parameter in folded:
            problem = _fold(merged, parameter, folded[parameter], inventory)
            if problem:
                problems.append(problem)
    for arg, value in checks:
        problem = _app_repo(merged, arg, value, inventory)
        if problem:
            problems.append(problem)
    if problems:
        hint = f"{label} takes args: {', '.join(template.args) or 'none'}"
        if template.other_args == "pass":
            hint += " (others pass as parameters of the same name)"
        if where:
            hint += f"; declare another under {where}.args in quayside.yaml or leave it out"
        raise InputError("; ".join(problems), hint=hint)
    return merged


def _fold(params: dict[str, Any], parameter: str, arg: str, inventory: Inventory) -> str | None:
    """Replace ``params[parameter]`` (app or env) by the inventory name it stands for; the
    problem, if any."""
    value = params[parameter]
    if not isinstance(value, str) or not value:
        return f"args.{arg}: must be a non-empty string (the {parameter})"
    if parameter == "app":
        names: list[str] = sorted(inventory.apps)
        what = "app"
    else:
        app = inventory.apps.get(str(params.get("app")))
        if app is None:
            return None  # the unknown app is reported when the run's scope is resolved
        names = sorted(app.environments)
        what = f"environment of app {params['app']}"
    found = match_name(value, names)
    if len(found) > 1:
        return f"args.{arg}: {_shown(value)} could be any of {', '.join(found)}; spell it exactly"
    if not found:
        return f"args.{arg}: no {what} called {_shown(value)} (known: {', '.join(names)})"
    params[parameter] = found[0]
    return None


def _app_repo(params: dict[str, Any], arg: str, value: Value, inventory: Inventory) -> str | None:
    """The problem with a git URL that must name the app's repository, if any."""
    if not isinstance(value, str) or not value.strip():
        return f"args.{arg}: must be a git URL (the app's repository)"
    app_name = params.get("app")
    app = inventory.apps.get(app_name) if isinstance(app_name, str) else None
    if app is None:
        return None  # no app yet: reported as a missing or unknown app
    if not app.repo:
        return (
            f"args.{arg}: app {app_name} has no repo in quayside.yaml to compare it with; "
            f"set apps.{app_name}.repo"
        )
    if not same_project(value, app.repo):
        return (
            f"args.{arg}: {_shown(repo_path(value))} is not the repository of app {app_name} "
            f"(apps.{app_name}.repo)"
        )
    return None


def missing_message(template: TaskTemplate, missing: Iterable[str], deployment: str) -> str:
    """``name: required by <deployment>; send args.X`` for each parameter the run lacks."""
    parts = []
    for name in missing:
        args = template.arguments_for(name)
        how = (
            f"send args.{' or args.'.join(args)}"
            if args
            else f"send it in args ({name})"
            if template.other_args == "pass"
            else "the task template neither fixes it nor maps an argument to it"
        )
        parts.append(f"{name}: required by {deployment} (no default); {how}")
    return "; ".join(parts)
