"""Variable versions an image release's config renders with: the release records, per injected
file, the ones its template read; ``quayside rollback`` on an image app passes them back as
``variable_versions`` (a release that recorded none: those current when it finished), and the
image release checks them as config publish does before rendering with them (SQLite ledger,
no server, no Docker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.sql_store import SqlConfigStore
from quayside.errors import InputError, NotFoundError
from quayside.images.image_release_config import render_release_config
from quayside.images.image_release_target import rollback_parameters
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, mark_running, start_release

ENV = EnvAddress("shop", "prod")
PROPS = ItemAddress("shop", "prod", "app", "app.properties")
D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


@pytest.fixture
def store(engine: Engine) -> SqlConfigStore:
    """API_IP v1, v2; PORT v1; app.properties a template reading API_IP."""
    store = SqlConfigStore(engine)
    for n in (1, 2):
        variables.set_value(store, None, ENV, "API_IP", f"10.0.0.{n}", author="ann")
    variables.set_value(store, None, ENV, "PORT", "8080", author="ann")
    items.save(store, PROPS, "api={{ API_IP }}\n", author="ann", base_version=0, template=True)
    return store


def image_release(engine: Engine, digest: str, config: str, **details: Any) -> int:
    row = start_release(
        engine, "shop", "prod", ReleaseKind.image, requested_by="ann", version=digest[7:9],
        image_digest=digest,
        details={"digest": digest, "serves": f"{digest} config {config}", **details},
    )  # fmt: skip
    mark_running(engine, row.id)
    finish_release(engine, row.id, ReleaseStatus.succeeded)
    return int(row.id)


def test_a_rollback_passes_the_variable_versions_the_release_recorded(
    engine: Engine, store: SqlConfigStore
) -> None:
    first = image_release(
        engine, D1, "c1", config_files={"app.properties": 1},
        config_variables={"app.properties": {"API_IP": 1}},
    )  # fmt: skip
    current = image_release(
        engine, D1, "c2", config_files={"app.properties": 1},
        config_variables={"app.properties": {"API_IP": 2}},
    )  # fmt: skip
    # the same digest and file version, other config: a variable changed between the two
    params = rollback_parameters(engine, "shop", "prod", to=None, requested_by="bo")
    assert params["version_or_digest"] == D1 and params["rollback_of"] == current
    assert params["config_versions"] == {"app.properties": 1}
    assert params["variable_versions"] == {"API_IP": 1}
    assert rollback_parameters(engine, "shop", "prod", to=str(first), requested_by="bo") == params


def test_a_release_that_recorded_no_variables_takes_those_current_when_it_finished(
    engine: Engine,
) -> None:
    store = SqlConfigStore(engine)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    variables.set_value(store, None, ENV, "API_IP", "10.0.0.1", author="ann", at=earlier)
    image_release(engine, D1, "c1", config_files={"app.properties": 1})  # before the field
    variables.set_value(store, None, ENV, "API_IP", "10.0.0.2", author="ann")
    variables.set_value(store, None, ENV, "PORT", "8080", author="ann")  # saved only later
    image_release(
        engine, D2, "c2", config_files={"app.properties": 1},
        config_variables={"app.properties": {"API_IP": 2}},
    )  # fmt: skip
    params = rollback_parameters(engine, "shop", "prod", to=None, requested_by="bo")
    assert params["version_or_digest"] == D1
    assert params["variable_versions"] == {"API_IP": 1}


def test_a_release_that_recorded_two_versions_of_a_variable_is_refused(
    engine: Engine, store: SqlConfigStore
) -> None:
    first = image_release(
        engine, D1, "c1", config_files={"app.properties": 1, "db.properties": 1},
        config_variables={"app.properties": {"API_IP": 1}, "db.properties": {"API_IP": 2}},
    )  # fmt: skip
    image_release(engine, D2, "c2", config_files={"app.properties": 1}, config_variables={})
    with pytest.raises(InputError, match=rf"release {first} rendered its files with different"):
        rollback_parameters(engine, "shop", "prod", to=None, requested_by="bo")


def test_a_release_without_config_passes_no_variable_versions(
    engine: Engine, store: SqlConfigStore
) -> None:
    image_release(engine, D1, "none", config_files={}, config_variables={})
    image_release(engine, D2, "none", config_files={}, config_variables={})
    params = rollback_parameters(engine, "shop", "prod", to=None, requested_by="bo")
    assert params["version_or_digest"] == D1
    assert "config_versions" not in params and "variable_versions" not in params


def test_the_release_config_renders_with_the_versions_given_and_records_what_it_read(
    store: SqlConfigStore,
) -> None:
    latest = render_release_config(store, "shop", "prod", "app", None, box=None, reader=None)
    assert dict(latest.rendered) == {"app.properties": "api=10.0.0.2\n"}
    assert latest.variables == {"app.properties": {"API_IP": 2}}
    back = render_release_config(
        store, "shop", "prod", "app", {"app.properties": 1}, box=None, reader=None,
        variable_versions={"API_IP": 1},
    )  # fmt: skip
    assert dict(back.rendered) == {"app.properties": "api=10.0.0.1\n"}
    assert back.variables == {"app.properties": {"API_IP": 1}}  # what was read, not the input
    assert back.version != latest.version  # the config version is the rendered content's


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        ({"NOPE": 1}, NotFoundError, "variable_versions.NOPE: shop/prod has no variable $NOPE"),
        (
            {"API_IP": 7},
            NotFoundError,
            "variable_versions.API_IP: $API_IP of shop/prod has no version 7 (it has v1-v2)",
        ),  # fmt: skip
        ({"API_IP": "1"}, InputError, "variable_versions.API_IP: must be a version number"),
    ],
)
def test_bad_variable_versions_are_refused_before_anything_renders(
    store: SqlConfigStore, given: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        render_release_config(
            store, "shop", "prod", "app", None, box=None, reader=None, variable_versions=given
        )
    assert str(caught.value).startswith(message), caught.value
    with pytest.raises(error):  # an app without a config service is checked alike
        render_release_config(
            store, "shop", "prod", None, None, box=None, reader=None, variable_versions=given
        )
