"""Variable versions a config publish renders with: the ``variable_versions`` flow parameter
checked against the environment's history (names and versions must exist, the key named in
every refusal), a rendering at those versions, and the ones a config rollback passes - the
versions the release it returns to recorded, or for a release that recorded none those
current when it finished (SQLite ledger, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.publish_files import rendered_files
from quayside.config.publish_rollback import rollback_parameters
from quayside.config.publish_variables import check_variable_versions
from quayside.config.sql_store import SqlConfigStore
from quayside.errors import InputError, NotFoundError, QuaysideError
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, mark_running, start_release

ENV = EnvAddress("DNS", "release")
HOSTS = ItemAddress("DNS", "release", "dnsmasq", "hosts")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


@pytest.fixture
def store(engine: Engine) -> SqlConfigStore:
    """API_IP v1..v3 (10.0.0.1 .. 10.0.0.3), PORT v1, and a hosts template reading API_IP."""
    store = SqlConfigStore(engine)
    for n in (1, 2, 3):
        variables.set_value(store, None, ENV, "API_IP", f"10.0.0.{n}", author="ann")
    variables.set_value(store, None, ENV, "PORT", "53", author="ann")
    template = "{{ API_IP }} api.internal\n"
    items.save(store, HOSTS, template, author="ann", base_version=0, template=True)
    return store


def test_named_versions_pass_and_render_the_old_value(store: SqlConfigStore) -> None:
    assert check_variable_versions(store, ENV, None) is None
    pinned = check_variable_versions(store, ENV, {"API_IP": 1})
    assert pinned == {"API_IP": 1}
    [hosts], seen = rendered_files(store, [(HOSTS, None)], None, None, pinned)
    assert hosts.content == "10.0.0.1 api.internal\n"
    assert hosts.variables == {"API_IP": 1}  # what the release records: what was read
    assert seen == {"API_IP": 1, "PORT": 1}  # the others at their latest
    [latest], _ = rendered_files(store, [(HOSTS, None)], None, None)
    assert latest.content == "10.0.0.3 api.internal\n" and latest.variables == {"API_IP": 3}


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        ({"NOPE": 1}, NotFoundError, "variable_versions.NOPE: DNS/release has no variable $NOPE"),
        (
            {"API_IP": 7},
            NotFoundError,
            "variable_versions.API_IP: $API_IP of DNS/release has no version 7 (it has v1-v3)",
        ),  # fmt: skip
        ({"API_IP": 0}, InputError, "variable_versions.API_IP: must be a version number"),
        ({"API_IP": "2"}, InputError, "variable_versions.API_IP: must be a version number"),
        ({"API_IP": True}, InputError, "variable_versions.API_IP: must be a version number"),
        ({"../x": 1}, InputError, "variable_versions: '../x' is not a variable name"),
        (["API_IP"], InputError, "variable_versions: must map variable names to version"),
    ],
)
def test_a_bad_name_or_version_is_refused_with_the_key_named(
    store: SqlConfigStore, given: Any, error: type[QuaysideError], message: str
) -> None:
    with pytest.raises(error) as caught:
        check_variable_versions(store, ENV, given)
    assert caught.value.message.startswith(message), caught.value.message


def config_release(engine: Engine, files: dict[str, Any]) -> int:
    row = start_release(
        engine, "DNS", "release", ReleaseKind.config, requested_by="ann",
        details={"service": "dnsmasq", "files": files},
    )  # fmt: skip
    mark_running(engine, row.id)
    finish_release(engine, row.id, ReleaseStatus.succeeded)
    return int(row.id)


def test_a_rollback_renders_with_the_variable_versions_its_release_recorded(
    engine: Engine, store: SqlConfigStore
) -> None:
    first = config_release(
        engine, {"hosts": {"version": 1, "content_hash": "a", "variables": {"API_IP": 1}}}
    )
    current = config_release(
        engine, {"hosts": {"version": 1, "content_hash": "b", "variables": {"API_IP": 3}}}
    )
    # the same file version, other content: a variable changed between the two publishes
    params = rollback_parameters(engine, "DNS", "release", requested_by="ann")
    assert params["versions"] == {"hosts": 1} and params["variable_versions"] == {"API_IP": 1}
    assert params["rollback_of"] == current
    assert rollback_parameters(engine, "DNS", "release", to=first) == {
        **params,
        "requested_by": "ui",
    }


def test_a_release_with_the_same_content_is_no_rollback_target(
    engine: Engine, store: SqlConfigStore
) -> None:
    same = {"hosts": {"version": 1, "content_hash": "a", "variables": {"API_IP": 1}}}
    config_release(engine, same)
    config_release(engine, same)
    with pytest.raises(NotFoundError, match="no earlier config release of dnsmasq with other"):
        rollback_parameters(engine, "DNS", "release")


def test_a_release_that_recorded_no_variables_takes_those_current_when_it_finished(
    engine: Engine,
) -> None:
    store = SqlConfigStore(engine)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    variables.set_value(store, None, ENV, "API_IP", "10.0.0.1", author="ann", at=earlier)
    config_release(engine, {"hosts": {"version": 1, "content_hash": "a"}})
    variables.set_value(store, None, ENV, "API_IP", "10.0.0.2", author="ann")
    variables.set_value(store, None, ENV, "PORT", "53", author="ann")  # saved only later
    config_release(engine, {"hosts": {"version": 1, "content_hash": "b", "variables": {}}})
    params = rollback_parameters(engine, "DNS", "release")
    assert params["variable_versions"] == {"API_IP": 1}


def test_a_release_that_recorded_two_versions_of_a_variable_is_refused(
    engine: Engine, store: SqlConfigStore
) -> None:
    first = config_release(
        engine,
        {
            "hosts": {"version": 1, "content_hash": "a", "variables": {"API_IP": 1}},
            "more.hosts": {"version": 1, "content_hash": "c", "variables": {"API_IP": 2}},
        },
    )
    config_release(engine, {"hosts": {"version": 1, "content_hash": "b", "variables": {}}})
    with pytest.raises(InputError, match=rf"release {first} rendered its files with different"):
        rollback_parameters(engine, "DNS", "release")
