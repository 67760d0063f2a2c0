"""Who asks for a CLI run (quayside.cli.requester) and how the submission is recorded
(quayside.runs.submission): the token's user, never a typed name; ``--as`` for SUPER only,
recorded beside the real principal. No server: a real SQLite ledger."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.auth import service
from quayside.auth.roles import PermissionDenied
from quayside.auth.service import AuthFailed
from quayside.cli.requester import AsRefused, Requester, given_token, who_asks
from quayside.deployments.catalogue import by_name
from quayside.errors import InputError
from quayside.inventory.models import Inventory
from quayside.ledger.audit import list_events
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.submissions import submission_of_run
from quayside.runs import RunHandle
from quayside.runs.submission import authorized_scope, record

INVENTORY = Inventory.model_validate(
    {
        "hosts": {"web-1": {"address": "127.0.0.11"}},
        "apps": {
            "shop": {
                "space": "commerce",
                "repo": "/srv/git/shop.git",
                "deploy_root": "/srv/shop",
                "environments": {"prod": {"hosts": ["web-1"]}},
            }
        },
    }
)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    service.create_user(engine, "dev")
    service.grant_role(engine, "dev", "DEVELOPER", space="commerce")
    service.create_user(engine, "reporter")
    service.grant_role(engine, "reporter", "REPORTER", space="commerce")
    service.create_user(engine, "root", is_super=True)
    yield engine
    engine.dispose()


def token(engine: Engine, user: str) -> str:
    return service.create_token(engine, user)


def test_without_a_token_the_cli_is_the_platform_operator() -> None:
    asked = who_asks(None, None, None)
    assert asked == Requester(f"cli:{getpass.getuser()}")
    assert asked.principal is None and asked.accountable == asked.name


def test_as_needs_a_token() -> None:
    with pytest.raises(AsRefused) as caught:
        who_asks(None, None, "someone-else")
    assert "--as needs a SUPER user's token" in caught.value.message
    assert "QUAYSIDE_TOKEN" in str(caught.value.hint)


def test_the_token_says_who_asks(ledger: Engine) -> None:
    asked = who_asks(ledger, token(ledger, "dev"), None)
    assert asked == Requester("dev", principal="dev")
    # naming yourself is allowed and changes nothing
    assert who_asks(ledger, token(ledger, "dev"), "dev") == Requester("dev", principal="dev")


def test_a_bad_token_is_refused(ledger: Engine) -> None:
    with pytest.raises(AuthFailed):
        who_asks(ledger, "qs_nosuchtoken_secret", None)


def test_as_is_refused_for_anyone_but_super(ledger: Engine) -> None:
    with pytest.raises(AsRefused) as caught:
        who_asks(ledger, token(ledger, "dev"), "someone-else")
    assert "--as is for SUPER users; dev is not one" in caught.value.message


def test_super_as_someone_else_is_recorded_beside_the_principal(ledger: Engine) -> None:
    asked = who_asks(ledger, token(ledger, "root"), "erin")
    assert asked == Requester("erin", principal="root", on_behalf_of="erin")
    assert asked.accountable == "root"
    with pytest.raises(AsRefused):
        who_asks(ledger, token(ledger, "root"), "eve\n| approvals |")


def test_given_token_reads_file_then_environment_and_never_prompts(tmp_path: Path) -> None:
    assert given_token(None, {}) is None
    assert given_token(None, {"QUAYSIDE_TOKEN": " qs_a_b \n"}) == "qs_a_b"
    secret = tmp_path / "token"
    secret.write_text("qs_file_token\n")
    secret.chmod(0o600)
    assert given_token(secret, {"QUAYSIDE_TOKEN": "qs_env"}) == "qs_file_token"
    secret.chmod(0o644)
    with pytest.raises(InputError, match="chmod 600"):
        given_token(secret, {})


def test_submission_is_checked_like_the_gateway_and_recorded(ledger: Engine) -> None:
    spec = by_name("git-deploy")
    params = {**spec.parameters, "app": "shop", "env": "prod", "ref": "v1"}
    with pytest.raises(PermissionDenied):
        authorized_scope(ledger, INVENTORY, "reporter", spec, params)
    scope = authorized_scope(ledger, INVENTORY, "root", spec, params)
    handle = RunHandle("run-1", "brave-fox", spec.full_name, "http://ui/run-1", None)
    record(ledger, handle, "root", spec, scope, via="cli", on_behalf_of="erin")
    submission = submission_of_run(ledger, "run-1")
    assert submission is not None
    assert (submission.principal, submission.via, submission.app, submission.env) == (
        "root",
        "cli",
        "shop",
        "prod",
    )
    event = next(e for e in list_events(ledger) if e.action == "run.submitted")
    assert event.actor == "root" and event.details is not None
    assert event.details["on_behalf_of"] == "erin" and event.details["via"] == "cli"
