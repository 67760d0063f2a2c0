"""Config center permissions with the existing roles: DEVELOPER+ of the project (the app of
quayside.yaml, in its space) edits drafts and variables, REPORTER+ reads, others nothing; a
project that is no app is SUPER only; an environment the app lacks is named."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from quayside.auth import service
from quayside.auth.roles import PermissionDenied, Role
from quayside.config.permissions import require_editor, require_reader
from quayside.errors import NotFoundError
from quayside.inventory.models import Inventory

INVENTORY = Inventory.model_validate(
    {"apps": {"DNS": {"space": "ops", "environments": {"release": {}, "test": {}}}}}
)


@pytest.fixture
def people(ledger_engine: Engine) -> Engine:
    for name in ("dev", "rep", "stranger", "other", "root"):
        service.create_user(ledger_engine, name, is_super=name == "root")
    service.grant_role(ledger_engine, "dev", "DEVELOPER", space="ops")
    service.grant_role(ledger_engine, "rep", "REPORTER", space="ops")
    service.grant_role(ledger_engine, "other", "MASTER", space="web-team")
    return ledger_engine


def test_developers_edit_reporters_read(people: Engine) -> None:
    assert require_editor(people, INVENTORY, "dev", "DNS", "release") is Role.DEVELOPER
    assert require_reader(people, INVENTORY, "rep", "DNS", "release") is Role.REPORTER
    with pytest.raises(PermissionDenied, match="rep needs DEVELOPER or higher in project 'DNS'"):
        require_editor(people, INVENTORY, "rep", "DNS", "release")
    for user in ("stranger", "other"):
        with pytest.raises(PermissionDenied, match=f"{user} needs REPORTER"):
            require_reader(people, INVENTORY, user, "DNS")
    assert require_editor(people, INVENTORY, "root", "DNS") is Role.SUPER


def test_a_project_grant_overrides_the_space(people: Engine) -> None:
    service.grant_role(people, "dev", "REPORTER", space="ops", project="DNS")
    with pytest.raises(PermissionDenied):
        require_editor(people, INVENTORY, "dev", "DNS")
    service.grant_role(people, "rep", "DEVELOPER", space="ops", project="DNS")
    require_editor(people, INVENTORY, "rep", "DNS")


def test_a_project_that_is_no_app_is_super_only(people: Engine) -> None:
    with pytest.raises(PermissionDenied, match="no app of quayside.yaml") as refused:
        require_reader(people, INVENTORY, "dev", "MAIL")
    assert "add an app 'MAIL'" in (refused.value.hint or "")
    assert require_editor(people, INVENTORY, "root", "MAIL") is Role.SUPER


def test_an_unknown_environment_is_named_after_the_role_check(people: Engine) -> None:
    with pytest.raises(NotFoundError, match="'prod' is not an environment of app 'DNS'") as e:
        require_reader(people, INVENTORY, "rep", "DNS", "prod")
    assert e.value.hint == "environments of DNS: release, test"
    with pytest.raises(PermissionDenied):  # a stranger learns nothing about environments
        require_reader(people, INVENTORY, "stranger", "DNS", "prod")
