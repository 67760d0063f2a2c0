"""Who may start a run, judged on what it acts on (quayside.auth.run_scope), and the same
judgement again when the run starts (quayside.auth.run_start): no server, a real SQLite
ledger. The attacks of the security review: a DEVELOPER of one space aiming a run at
another space's hosts, and a scheduled run outliving its submitter's role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.auth import service
from quayside.auth.roles import PermissionDenied
from quayside.auth.run_scope import RunScope, authorize_run, host_owners, scope_of_run
from quayside.auth.run_start import RunNotAuthorized, confirm_submitter, withdrawn_submissions
from quayside.errors import InputError, NotFoundError
from quayside.inventory.models import Inventory
from quayside.ledger.audit import list_events
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import SubmissionStatus
from quayside.ledger.submissions import record_submission, submission_of_run

INVENTORY = Inventory.model_validate(
    {
        "hosts": {
            "a-1": {"address": "127.0.0.11"},
            "b-1": {"address": "127.0.0.12"},
            "shared": {"address": "127.0.0.13"},
            "spare": {"address": "127.0.0.14"},
        },
        "groups": {"b-hosts": ["b-1"], "mixed": ["a-1", "shared"], "loose": ["spare"]},
        "apps": {
            "alpha": {
                "space": "team-a",
                "repo": "/srv/git/alpha.git",
                "deploy_root": "/srv/alpha",
                "environments": {"prod": {"hosts": ["a-1", "shared"]}},
            },
            "beta": {
                "space": "team-b",
                "repo": "/srv/git/beta.git",
                "deploy_root": "/srv/beta",
                "environments": {"prod": {"groups": ["b-hosts"]}, "test": {"hosts": ["shared"]}},
            },
        },
    }
)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    service.create_user(engine, "dev-a")
    service.grant_role(engine, "dev-a", "DEVELOPER", space="team-a")
    service.create_user(engine, "dev-b")
    service.grant_role(engine, "dev-b", "DEVELOPER", space="team-b")
    service.create_user(engine, "root", is_super=True)
    yield engine
    engine.dispose()


def deploy_scope(**params: object) -> RunScope:
    return scope_of_run(
        INVENTORY, deployment="git-deploy", kind="app-env", minimum_role="DEVELOPER", params=params
    )


def command_scope(group: str) -> RunScope:
    return scope_of_run(
        INVENTORY,
        deployment="hello-release",
        kind="host-group",
        minimum_role="SUPER",
        params={"group": group},
    )


def test_a_host_is_owned_by_the_spaces_whose_apps_use_it() -> None:
    owners = host_owners(INVENTORY)
    assert owners == {
        "a-1": {"team-a"},
        "b-1": {"team-b"},
        "shared": {"team-a", "team-b"},
        "spare": set(),
    }


def test_an_app_run_is_judged_on_the_apps_space(ledger: Engine) -> None:
    authorize_run(ledger, "dev-a", deploy_scope(app="alpha", env="prod"))
    with pytest.raises(
        PermissionDenied, match="dev-b needs DEVELOPER or higher in project 'alpha'"
    ):
        authorize_run(ledger, "dev-b", deploy_scope(app="alpha", env="prod"))


def test_hosts_outside_the_environment_are_refused_by_name() -> None:
    """The review's attack: a run of an app of space A pointed at space B's hosts."""
    with pytest.raises(NotFoundError, match=r"hosts: b-1 not in alpha/prod") as caught:
        deploy_scope(app="alpha", env="prod", hosts=["a-1", "b-1"])
    assert caught.value.hint is not None and "a-1, shared" in caught.value.hint


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"app": "alpha"}, "env: required"),
        ({"env": "prod"}, "app: required"),
        ({"app": "alpha", "env": "prod", "hosts": "a-1"}, "hosts: must be a list"),
        ({"app": ["alpha"], "env": "prod"}, "app: required, a non-empty string"),
    ],
)
def test_malformed_scope_parameters_are_named(params: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        deploy_scope(**params)


def test_a_command_on_hosts_needs_the_role_in_every_owning_space(ledger: Engine) -> None:
    """An arbitrary command is SUPER-only; even a SUPER-only rule is judged per owning space:
    a host shared by two spaces needs both, a host no app uses needs SUPER."""
    mixed = command_scope("mixed")
    assert set(mixed.places) == {("team-a", None), ("team-b", None)}
    for user in ("dev-a", "dev-b"):
        with pytest.raises(PermissionDenied, match="needs SUPER"):
            authorize_run(ledger, user, mixed)
    with pytest.raises(PermissionDenied, match="spare that no app uses"):
        authorize_run(ledger, "dev-a", command_scope("loose"))
    authorize_run(ledger, "root", command_scope("loose"))
    authorize_run(ledger, "root", mixed)


def test_a_developer_host_group_run_is_judged_per_owning_space(ledger: Engine) -> None:
    scope = scope_of_run(
        INVENTORY,
        deployment="ops-task",
        kind="host-group",
        minimum_role="DEVELOPER",
        params={"group": "mixed"},
    )
    with pytest.raises(PermissionDenied, match="dev-a needs DEVELOPER or higher in space 'team-b'"):
        authorize_run(ledger, "dev-a", scope)


def submit(ledger: Engine, run_id: str, user: str = "dev-a") -> None:
    record_submission(
        ledger,
        flow_run_id=run_id,
        deployment="git-deploy",
        scope_kind="app-env",
        minimum_role="DEVELOPER",
        principal=user,
        via="task-api",
        app="alpha",
        env="prod",
        scheduled_at=datetime.now(UTC) + timedelta(hours=2),
    )


def test_a_run_is_recorded_as_its_submitter_whatever_its_parameters_say(ledger: Engine) -> None:
    submit(ledger, "run-1")
    assert confirm_submitter(ledger, INVENTORY, "run-1", {"app": "alpha", "env": "prod"}) == (
        "dev-a"
    )
    row = submission_of_run(ledger, "run-1")
    assert row is not None and row.status is SubmissionStatus.started
    assert confirm_submitter(ledger, INVENTORY, "not-submitted", {"app": "alpha"}) is None


def test_a_scheduled_run_is_refused_at_start_after_its_submitters_role_is_revoked(
    ledger: Engine,
) -> None:
    submit(ledger, "run-2")
    service.revoke_role(ledger, "dev-a", space="team-a")
    with pytest.raises(RunNotAuthorized, match="dev-a needs DEVELOPER or higher") as caught:
        confirm_submitter(ledger, INVENTORY, "run-2", {"app": "alpha", "env": "prod"})
    assert "through task-api" in caught.value.message
    row = submission_of_run(ledger, "run-2")
    assert row is not None and row.status is SubmissionStatus.refused
    events = [e for e in list_events(ledger) if e.action == "run.refused"]
    assert [e.subject_id for e in events] == ["run-2"]
    with pytest.raises(RunNotAuthorized, match="refused before it started"):
        confirm_submitter(ledger, INVENTORY, "run-2", {"app": "alpha", "env": "prod"})


def test_a_disabled_submitter_is_refused_at_start(ledger: Engine) -> None:
    from quayside.ledger.users import set_disabled

    submit(ledger, "run-3")
    set_disabled(ledger, "dev-a", True)
    with pytest.raises(RunNotAuthorized, match="dev-a needs DEVELOPER or higher.*has no role"):
        confirm_submitter(ledger, INVENTORY, "run-3", {"app": "alpha", "env": "prod"})


def test_a_run_whose_hosts_left_the_environment_is_refused_at_start(ledger: Engine) -> None:
    submit(ledger, "run-4")
    with pytest.raises(RunNotAuthorized, match="b-1 not in alpha/prod"):
        confirm_submitter(
            ledger, INVENTORY, "run-4", {"app": "alpha", "env": "prod", "hosts": ["b-1"]}
        )


def test_revoking_finds_the_waiting_runs_the_user_may_no_longer_start(ledger: Engine) -> None:
    submit(ledger, "run-5")
    submit(ledger, "run-6", user="dev-b")
    assert withdrawn_submissions(ledger, INVENTORY, "dev-a") == []
    service.revoke_role(ledger, "dev-a", space="team-a")
    withdrawn = withdrawn_submissions(ledger, INVENTORY, "dev-a")
    assert [(s.flow_run_id, "needs DEVELOPER" in why) for s, why in withdrawn] == [("run-5", True)]
    assert withdrawn_submissions(ledger, INVENTORY, "dev-b")[0][0].flow_run_id == "run-6"
