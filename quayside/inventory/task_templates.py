"""Task templates: what a numeric ``temp_id`` of the task API means (the older platform's
task templates, seed 000).

The older platform's scripts post ``temp_id: "1"`` with the arguments template 1 declared
(``{'TAG': ..., 'GIT_URL': ..., 'APP_NAME': 'Web'}``). In quayside.yaml a template names the
deployment it starts, the parameters it fixes (``app``, ``env``, ...) and, for every argument
the scripts send, what it becomes::

    task_templates:
      "1":
        deployment: git-deploy
        parameters: {env: prod}
        args:
          TAG: ref                                 # renamed: sets parameter ref
          APP_NAME: {parameter: app, case: fold}   # 'Web' finds app web
          GIT_URL: {check: app_repo}               # must name the app's repository
          EXTRA: ignore                            # accepted and dropped

An argument a template does not declare is refused (naming it), unless ``other_args: pass``.
Which deployments and parameters exist is checked by ``quayside check`` against the catalogue;
here only the file's own consistency and its references into the inventory are validated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

if TYPE_CHECKING:
    from quayside.inventory.models import Inventory

RESERVED_PARAMETERS = frozenset({"requested_by", "approval", "approval_request_id"})
"""Parameters Quayside sets itself (who asked, whether the run waits for approval): no template
and no caller may set them."""
FOLDABLE = frozenset({"app", "env"})
"""Parameters whose value can be matched case-insensitively against the inventory's names."""

ParameterName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
ArgumentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


def _template_id(value: str) -> str:
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise ValueError(f"{value[:20]!r}: a task template id is a number (what temp_id sends)")
    return value


TemplateId = Annotated[str, AfterValidator(_template_id)]
FixedValue = str | int | float | bool | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgMapping(_Strict):
    """What one argument of a template becomes. Exactly one of ``parameter``, ``check`` or
    ``ignore``; in YAML a bare string is a rename (``TAG: ref``) and ``ignore`` ignores."""

    parameter: ParameterName | None = Field(
        None, description="the deployment parameter this argument sets (TAG -> ref)"
    )
    case: Literal["exact", "fold"] = Field(
        "exact",
        description="'fold': match the value case-insensitively against the inventory's names "
        "(app names for app, the app's environments for env), so 'Web' finds app web",
    )
    check: Literal["app_repo"] | None = Field(
        None,
        description="'app_repo': the value is a git URL that must name the same project as the "
        "app's repo (host and URL form aside); it sets no parameter",
    )
    ignore: bool = Field(
        False,
        description="accept the argument and drop it (the old template used it, Quayside not)",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "ignore":
            return {"ignore": True}
        if isinstance(value, str):
            return {"parameter": value}
        return value

    @model_validator(mode="after")
    def _one_meaning(self) -> ArgMapping:
        given = [
            name
            for name, on in (
                ("parameter", self.parameter is not None),
                ("check", self.check is not None),
                ("ignore", self.ignore),
            )
            if on
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of parameter (a rename: 'TAG: ref'), check (app_repo) or "
                f"ignore ('EXTRA: ignore'); got {', '.join(given) or 'none'}"
            )
        if self.case == "fold" and self.parameter not in FOLDABLE:
            raise ValueError(
                "case: fold matches against the inventory's names: only for parameter app or env"
            )
        if self.parameter in RESERVED_PARAMETERS:
            raise ValueError(f"parameter {self.parameter}: set by Quayside, never by a caller")
        return self


LEGACY_ARGS: dict[str, ArgMapping] = {
    "APP_NAME": ArgMapping(parameter="app", case="fold"),
    "ENV": ArgMapping(parameter="env", case="fold"),
    "TAG": ArgMapping(parameter="ref"),
    "VERSION": ArgMapping(parameter="ref"),
}
"""The upper-case names the older platform's scripts send, for a ``temp_id`` that names a
deployment or a (deprecated) ``task_aliases`` entry; other arguments pass by name."""


class TaskTemplate(_Strict):
    """One numbered task template: what ``temp_id`` starts and how its arguments map."""

    deployment: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$",
        description="the catalogue deployment it starts (git-deploy, rollback)",
    )
    description: str = Field("", max_length=200, description="what the template is for")
    parameters: dict[ParameterName, FixedValue] = Field(
        default_factory=dict,
        description="parameters the template fixes (app, env, batch, ...); a caller cannot "
        "change them",
    )
    args: dict[ArgumentName, ArgMapping] = Field(
        default_factory=dict,
        description="each argument the older platform's scripts send, and what it becomes",
    )
    other_args: Literal["refuse", "pass"] = Field(
        "refuse",
        description="arguments not listed in args: 'refuse' (named in a 400), or 'pass' as "
        "parameters of the same name (still refused if the deployment does not take them)",
    )

    def sets(self, parameter: str) -> bool:
        """Whether the template fixes ``parameter`` or maps an argument to it."""
        return parameter in self.parameters or any(
            m.parameter == parameter for m in self.args.values()
        )

    def arguments_for(self, parameter: str) -> list[str]:
        """The arguments that set ``parameter``, in declaration order."""
        return [arg for arg, m in self.args.items() if m.parameter == parameter]

    @classmethod
    def legacy(cls, deployment: str) -> TaskTemplate:
        """The implicit template of a ``temp_id`` naming a deployment (or a deprecated alias):
        the older scripts' upper-case names mapped, other arguments passed by name."""
        return cls(deployment=deployment, args=LEGACY_ARGS, other_args="pass")


def template_keys(value: Any) -> Any:
    """YAML reads ``1:`` as an integer: accept it as the template id ``"1"``."""
    if isinstance(value, dict):
        return {
            str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
            for k, v in value.items()
        }
    return value


def template_errors(template: TaskTemplate, where: str) -> list[str]:
    """A template's own contradictions, one ``key.path: problem`` each: a reserved parameter
    fixed, an argument mapped to a fixed parameter, an app_repo check without an app."""
    errors: list[str] = []
    for name in sorted(template.parameters):
        if name in RESERVED_PARAMETERS:
            errors.append(f"{where}.parameters.{name}: set by Quayside, never by a template")
    for arg, mapping in template.args.items():
        if mapping.parameter is not None and mapping.parameter in template.parameters:
            errors.append(
                f"{where}.args.{arg}: parameter {mapping.parameter} is fixed by "
                f"{where}.parameters.{mapping.parameter}; remove one of them"
            )
        if mapping.check == "app_repo" and not template.sets("app"):
            errors.append(
                f"{where}.args.{arg}: check app_repo compares with the app's repo, but the "
                "template neither fixes app (parameters.app) nor maps an argument to it"
            )
    return errors


def reference_errors(inventory: Inventory) -> list[str]:
    """Problems with the templates and what they name in the inventory, one ``key.path:
    problem`` each: their own contradictions (:func:`template_errors`), a fixed app or
    environment that does not exist, a temp_id both templated and aliased."""
    errors: list[str] = []
    for key, template in inventory.task_templates.items():
        where = f"task_templates.{key}"
        errors.extend(template_errors(template, where))
        app_name = template.parameters.get("app")
        env_name = template.parameters.get("env")
        app = inventory.apps.get(app_name) if isinstance(app_name, str) else None
        if app_name is not None and app is None:
            known = ", ".join(sorted(inventory.apps)) or "none defined"
            errors.append(f"{where}.parameters.app: unknown app {app_name!r} (apps: {known})")
        if app is not None and env_name is not None and env_name not in app.environments:
            known = ", ".join(sorted(app.environments))
            errors.append(
                f"{where}.parameters.env: app {app_name!r} has no environment {env_name!r} "
                f"(environments: {known})"
            )
        if key in inventory.task_aliases:
            errors.append(
                f"task_aliases.{key}: temp_id {key} is also a task template; remove the alias"
            )
    return errors
