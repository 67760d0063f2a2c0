"""Task templates (a numeric temp_id of the older task platform, seed 000): their validation in
quayside.yaml, ``quayside check`` against the flow catalogue, and the mapping of a task's
arguments to a run's parameters — with the seed's own argument names and values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quayside.cli.inventory_checks import check_inventory
from quayside.errors import ConfigError, InputError, NotFoundError
from quayside.inventory import Inventory, parse_inventory
from quayside.inventory.task_templates import TaskTemplate
from quayside.triggers.literal import parse_mapping
from quayside.triggers.tasks_api import parse_submission, resolve_template, to_request
from quayside.triggers.template_args import map_arguments, match_name, missing_message
from testbed import FIXTURES_DIR

FIXTURES = FIXTURES_DIR
SEED = json.loads((FIXTURES / "tasks" / "seed_script.json").read_text(encoding="utf-8"))["body"]
SEED_ARGS: dict[str, Any] = dict(parse_mapping(SEED["args"], "args"))  # type: ignore[arg-type]

INVENTORY = """
timezone: Asia/Shanghai
hosts:
  web-101: {address: 172.16.0.101}
apps:
  web:
    repo: https://gitlab.xxxxxxx.com/xxxxx/xxxxx.git
    environments:
      prod: {hosts: [web-101]}
      Test: {hosts: [web-101]}
      TEST: {hosts: [web-101]}
  site:
    environments:
      prod: {hosts: [web-101]}
task_templates:
  "1":
    deployment: git-deploy
    parameters: {env: prod}
    args:
      TAG: ref
      APP_NAME: {parameter: app, case: fold}
      GIT_URL: {check: app_repo}
      EXTRA: ignore
"""


@pytest.fixture(name="inventory")
def inventory_fixture() -> Inventory:
    return parse_inventory(INVENTORY)


def template_1(inventory: Inventory) -> TaskTemplate:
    return inventory.task_templates["1"]


def mapped(inventory: Inventory, args: dict[str, Any], template: TaskTemplate | None = None) -> Any:
    return map_arguments(
        template or template_1(inventory),
        args,
        inventory,
        label="task template 1",
        where="task_templates.1",
    )


# -- quayside.yaml ---------------------------------------------------------------------------


def test_a_template_in_yaml_with_shorthands(inventory: Inventory) -> None:
    template = template_1(inventory)
    assert template.deployment == "git-deploy"
    assert template.args["TAG"].parameter == "ref"
    assert (template.args["APP_NAME"].parameter, template.args["APP_NAME"].case) == ("app", "fold")
    assert template.args["GIT_URL"].check == "app_repo"
    assert template.args["EXTRA"].ignore
    # YAML reads an unquoted 1 as a number: still template "1"
    unquoted = parse_inventory(INVENTORY.replace('  "1":', "  1:"))
    assert list(unquoted.task_templates) == ["1"]


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "quayside.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "EXTRA: ignore",
            "EXTRA: {parameter: ref, check: app_repo}",
            "quayside.yaml: task_templates.1.args.EXTRA: give exactly one of parameter",
        ),
        (
            "EXTRA: ignore",
            "EXTRA: {ignored: true}",
            "quayside.yaml: task_templates.1.args.EXTRA.ignored: unknown key",
        ),
        (
            "EXTRA: ignore",
            "EXTRA: {parameter: ref, case: fold}",
            "task_templates.1.args.EXTRA: case: fold matches against the inventory's names",
        ),
        (
            "EXTRA: ignore",
            "EXTRA: approval",
            "task_templates.1.args.EXTRA: parameter approval: set by Quayside",
        ),
        (
            "EXTRA: ignore",
            "ENV: env",
            "quayside.yaml: task_templates.1.args.ENV: parameter env is fixed by "
            "task_templates.1.parameters.env",
        ),
        (
            "parameters: {env: prod}",
            "parameters: {env: prod, requested_by: boss}",
            "quayside.yaml: task_templates.1.parameters.requested_by: set by Quayside",
        ),
        (
            "parameters: {env: prod}",
            "parameters: {env: prod, app: shop}",
            "quayside.yaml: task_templates.1.parameters.app: unknown app 'shop'",
        ),
        (
            "parameters: {env: prod}",
            "parameters: {env: staging, app: site}",
            "quayside.yaml: task_templates.1.parameters.env: app 'site' has no environment "
            "'staging'",
        ),
        (
            '  "1":',
            '  "web":',
            "quayside.yaml: task_templates.web.[key]: 'web': a task template id is a number",
        ),
        ("deployment: git-deploy", "deployment: 'rm -rf'", "task_templates.1.deployment: "),
        ("    deployment: git-deploy\n", "", "task_templates.1.deployment: required key"),
    ],
)
def test_template_errors_name_the_key_path(old: str, new: str, expected: str) -> None:
    assert old in INVENTORY
    message = _error(INVENTORY.replace(old, new))
    assert expected in message, message


def test_app_repo_check_needs_an_app() -> None:
    text = INVENTORY.replace("APP_NAME: {parameter: app, case: fold}", "APP_NAME: ignore")
    assert "task_templates.1.args.GIT_URL: check app_repo compares with the app's repo" in (
        _error(text)
    )


def test_a_temp_id_both_templated_and_aliased_is_refused() -> None:
    message = _error(INVENTORY + 'task_aliases: {"1": git-deploy}\n')
    assert "task_aliases.1: temp_id 1 is also a task template; remove the alias" in message


# -- quayside check: the catalogue -----------------------------------------------------------


def test_check_finds_the_fixture_inventories_clean() -> None:
    codo = parse_inventory((FIXTURES / "gateway" / "codo_inventory.yaml").read_text())
    assert check_inventory(codo).errors == check_inventory(codo).warnings == []
    shared = (FIXTURES / "gateway" / "inventory.yaml").read_text().replace("{home}", "/tmp/x")
    report = check_inventory(parse_inventory(shared))
    assert report.errors == []
    assert report.warnings == [
        'task_aliases.1: deprecated; write it as a task template: task_templates: {"1": '
        "{deployment: git-deploy, args: {...}}} (the older platform's arguments mapped "
        "explicitly)"
    ]


def test_check_validates_deployments_and_parameters_against_the_catalogue() -> None:
    text = INVENTORY.replace("TAG: ref", "TAG: reff").replace(
        "parameters: {env: prod}", "parameters: {env: prod, batchy: 2}"
    )
    text += """
  "2": {deployment: no-such-flow}
  "3": {deployment: hello-release}
  "4": {deployment: rollback, parameters: {app: web, env: prod}}
  "5": {deployment: git-deploy, other_args: pass}
"""
    report = check_inventory(parse_inventory(text))
    assert report.errors == [
        "task_templates.1.parameters.batchy: not a parameter of git-deploy (parameters: app, "
        "batch, dry_run, env, hosts, lock_wait_s, ref)",
        "task_templates.1.args.TAG: reff is not a parameter of git-deploy (parameters: app, "
        "batch, dry_run, env, hosts, lock_wait_s, ref)",
        "task_templates.1: git-deploy needs ref: fix it under task_templates.1.parameters or "
        "map an argument to it in task_templates.1.args",
        "task_templates.2.deployment: no deployment 'no-such-flow' in the catalogue (task API: "
        "git-deploy, rollback, config-publish, image-build, image-release, image-promote)",
        "task_templates.3.deployment: hello-release cannot be started through the task API "
        "(not triggerable)",
    ]


def test_check_warns_when_templates_read_exec_time_as_utc() -> None:
    text = INVENTORY.replace("timezone: Asia/Shanghai\n", "")
    (warning,) = check_inventory(parse_inventory(text)).warnings
    assert warning.startswith("timezone: not set, so the task API reads an exec_time")
    assert "8 h late" in warning and "timezone: Asia/Shanghai" in warning
    no_templates = "hosts: {}\n"
    assert check_inventory(parse_inventory(no_templates)).warnings == []
    utc = check_inventory(parse_inventory("timezone: UTC\n" + text)).warnings
    assert utc == []  # UTC chosen explicitly
    bad = check_inventory(parse_inventory("timezone: Mars/Olympus\n" + text)).errors
    assert bad == [
        "timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as Asia/Shanghai or UTC"
    ]


# -- what temp_id stands for -------------------------------------------------------------------


def test_temp_id_resolves_to_a_template_an_alias_or_a_deployment(inventory: Inventory) -> None:
    one = resolve_template("1", inventory.task_templates, {"7": "rollback"})
    assert (one.template, one.label, one.where) == (
        template_1(inventory),
        "task template 1",
        "task_templates.1",
    )
    alias = resolve_template(7, inventory.task_templates, {"7": "rollback"})
    assert alias.template.deployment == "rollback" and alias.where == "task_aliases.7"
    assert alias.template.other_args == "pass"
    named = resolve_template("git-deploy", inventory.task_templates, {})
    assert (named.template.deployment, named.where) == ("git-deploy", None)
    with pytest.raises(NotFoundError, match="temp_id: no task template '9' is configured"):
        resolve_template("9", inventory.task_templates, {})


def test_the_seed_body_becomes_a_request_of_template_1(inventory: Inventory) -> None:
    request = to_request(
        parse_submission(SEED), inventory.task_aliases, templates=inventory.task_templates
    )
    assert request.deployment == "git-deploy"
    assert request.template.label == "task template 1"
    assert request.parameters == SEED_ARGS


# -- arguments to parameters ---------------------------------------------------------------------


def test_the_seeds_arguments_map_to_parameters(inventory: Inventory) -> None:
    """{'TAG': 'codo-beta0.3', 'GIT_URL': 'git@gitlab.xxxxxxx.com:xxxxx/xxxxx.git',
    'APP_NAME': 'Web'}: TAG renamed, 'Web' folded to app web, the scp-like GIT_URL names the
    same project as the app's https repo, env fixed by the template."""
    assert mapped(inventory, SEED_ARGS) == {"env": "prod", "ref": "codo-beta0.3", "app": "web"}
    assert mapped(inventory, {**SEED_ARGS, "EXTRA": "anything"})["app"] == "web"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"VERSION": "v1"}, ["args.VERSION: not an argument of task template 1"]),
        ({"APP_NAME": "Shop"}, ["args.APP_NAME: no app called 'Shop' (known: site, web)"]),
        ({"APP_NAME": 7}, ["args.APP_NAME: must be a non-empty string (the app)"]),
        (
            {"APP_NAME": "web", "GIT_URL": "git@gitlab.xxxxxxx.com:xxxxx/other.git"},
            ["args.GIT_URL: 'xxxxx/other' is not the repository of app web (apps.web.repo)"],
        ),
        ({"APP_NAME": "web", "GIT_URL": ""}, ["args.GIT_URL: must be a git URL"]),
        (
            {"APP_NAME": "site", "GIT_URL": "git@gitlab.xxxxxxx.com:xxxxx/xxxxx.git"},
            ["args.GIT_URL: app site has no repo in quayside.yaml to compare it with"],
        ),
        (
            {"VERSION": "v1", "colour": "blue", "APP_NAME": "nope"},
            [
                "args.VERSION: not an argument",
                "args.colour: not an argument",
                "args.APP_NAME: no app called 'nope'",
            ],
        ),
    ],
)
def test_refused_arguments_are_named(
    inventory: Inventory, args: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(InputError) as info:
        mapped(inventory, args)
    for fragment in expected:
        assert fragment in info.value.message, info.value.message
    assert "task template 1 takes args: TAG, APP_NAME, GIT_URL, EXTRA" in str(info.value.hint)
    assert "task_templates.1.args" in str(info.value.hint)


def test_folding_an_environment_and_refusing_an_ambiguous_one(inventory: Inventory) -> None:
    legacy = TaskTemplate.legacy("git-deploy")
    assert mapped(inventory, {"APP_NAME": "WEB", "ENV": "Prod", "TAG": "v1"}, legacy) == {
        "app": "web",
        "env": "prod",
        "ref": "v1",
    }
    assert mapped(inventory, {"APP_NAME": "web", "ENV": "Test"}, legacy)["env"] == "Test"
    with pytest.raises(InputError, match="args.ENV: 'test' could be any of TEST, Test"):
        mapped(inventory, {"APP_NAME": "web", "ENV": "test"}, legacy)


def test_the_implicit_template_passes_other_arguments_by_name(inventory: Inventory) -> None:
    legacy = TaskTemplate.legacy("git-deploy")
    assert mapped(inventory, {"app": "web", "env": "prod", "ref": "v1", "batch": 2}, legacy) == {
        "app": "web",
        "env": "prod",
        "ref": "v1",
        "batch": 2,
    }
    # reserved and unknown names pass here: the gateway refuses them against the deployment
    assert mapped(inventory, {"approval": False}, legacy) == {"approval": False}
    with pytest.raises(InputError, match="args.VERSION: sets ref like args.TAG, to another"):
        mapped(inventory, {"TAG": "v1", "VERSION": "v2"}, legacy)


def test_a_fixed_parameter_cannot_be_overridden(inventory: Inventory) -> None:
    template = TaskTemplate(deployment="git-deploy", parameters={"env": "test"}, other_args="pass")
    with pytest.raises(InputError, match=r"args.env: env is fixed by task template 1 \(env='test'"):
        mapped(inventory, {"env": "prod"}, template)


def test_missing_parameters_say_which_argument_sets_them(inventory: Inventory) -> None:
    assert missing_message(template_1(inventory), ["ref"], "git-deploy") == (
        "ref: required by git-deploy (no default); send args.TAG"
    )
    legacy = TaskTemplate.legacy("git-deploy")
    assert missing_message(legacy, ["env", "ref"], "git-deploy") == (
        "env: required by git-deploy (no default); send args.ENV; "
        "ref: required by git-deploy (no default); send args.TAG or args.VERSION"
    )


def test_match_name() -> None:
    assert match_name("Web", ["web", "site"]) == ["web"]
    assert match_name("web", ["web", "WEB"]) == ["web"]  # exact first
    assert match_name("Web", ["web", "WEB"]) == ["web", "WEB"]
    assert match_name("shop", ["web"]) == []
