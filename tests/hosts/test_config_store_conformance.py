"""One conformance suite for every config center backend: the ledger on SQLite and on
PostgreSQL, and Vault KV v2 through hvac (against the loopback Vault of testbed/vault.py).
Each test goes through the core (quayside.config.items / variables), as every caller does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import pytest

from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.errors import StaleSave, UnknownVaultPath, VaultUnavailable, VersionNotFound
from quayside.config.masking import MASK
from quayside.config.records import content_hash
from quayside.config.render import render_published, render_version
from quayside.config.secret_box import SecretBox
from quayside.config.sql_store import SqlConfigStore
from quayside.config.store import ConfigStore
from quayside.config.vault_refs import VaultReader
from quayside.config.vault_store import VaultConfigStore
from quayside.ledger.db import make_engine, migrate
from testbed.postgres import PostgresServer
from testbed.vault import VAULT_TOKEN, FakeVault

HOSTS = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq_hosts")
CONF = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq.conf")
ENV = EnvAddress("DNS", "release")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "vault"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConfigStore]:
    """The same store interface over each backend."""
    if request.param == "vault":
        vault: FakeVault = request.getfixturevalue("fake_vault")
        yield VaultConfigStore(hvac.Client(url=vault.url, token=VAULT_TOKEN))
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        migrate(url)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(template=request.getfixturevalue("postgres_ledger_template"))
    engine = make_engine(url)
    try:
        yield SqlConfigStore(engine)
    finally:
        engine.dispose()


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    return SecretBox.from_home(tmp_path / "home")


def test_saves_make_an_append_only_history(store: ConfigStore) -> None:
    first = items.save(store, HOSTS, "10.0.0.1 a\n", author="ann", base_version=0, message="add a")
    second = items.save(store, HOSTS, "10.0.0.1 a\n10.0.0.2 b\n", author="bob", base_version=1)
    assert (first.version, second.version) == (1, 2)
    history = items.history(store, HOSTS)
    assert [(v.version, v.author, v.message) for v in history] == [
        (1, "ann", "add a"),
        (2, "bob", ""),
    ]
    assert history[0].content == "10.0.0.1 a\n"
    assert history[1].content_hash == content_hash("10.0.0.1 a\n10.0.0.2 b\n")
    assert all(abs(v.created_at - datetime.now(UTC)) < timedelta(minutes=5) for v in history)
    assert items.get(store, HOSTS).version == 2
    assert items.get(store, HOSTS, 1).content == "10.0.0.1 a\n"
    assert "10.0.0.1" not in repr(history[0])  # content is left out of reprs


def test_a_stale_save_is_refused_showing_both_versions(store: ConfigStore) -> None:
    items.save(store, HOSTS, "base\n", author="ann", base_version=0)
    items.save(store, HOSTS, "bob's change\n", author="bob", base_version=1)
    with pytest.raises(StaleSave) as refused:
        items.save(store, HOSTS, "ann's change\n", author="ann", base_version=1)
    error = refused.value
    assert (error.base_version, error.current_version, error.current_author) == (1, 2, "bob")
    assert error.current_shown == "bob's change\n" and error.attempted == "ann's change\n"
    assert "-bob's change" in str(error) and "+ann's change" in str(error)
    assert "--base 2" in (error.hint or "")
    assert [v.version for v in items.history(store, HOSTS)] == [1, 2]  # nothing saved, nothing lost
    with pytest.raises(StaleSave):
        items.save(store, HOSTS, "new?\n", author="cy", base_version=0)  # it exists already


def test_racing_saves_from_one_base_never_both_win(store: ConfigStore) -> None:
    items.save(store, HOSTS, "v1\n", author="ann", base_version=0)
    barrier = threading.Barrier(4)
    outcomes: list[Any] = []

    def save(n: int) -> None:
        barrier.wait()
        try:
            outcomes.append(
                items.save(store, HOSTS, f"writer {n}\n", author=f"u{n}", base_version=1)
            )
        except StaleSave as e:
            outcomes.append(e)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if not isinstance(o, StaleSave)]
    assert len(won) == 1 and len(outcomes) == 4
    assert all(o.current_version == 2 for o in outcomes if isinstance(o, StaleSave))
    assert [v.version for v in items.history(store, HOSTS)] == [1, 2]


def test_diff_between_any_two_versions(store: ConfigStore) -> None:
    items.save(store, CONF, "port=53\ncache-size=100\n", author="ann", base_version=0)
    items.save(store, CONF, "port=53\ncache-size=500\n", author="ann", base_version=1)
    items.save(store, CONF, "port=5353\ncache-size=500\n", author="ann", base_version=2)
    text = items.diff(store, CONF, 1, 3)
    assert text.startswith(f"--- {CONF} v1\n+++ {CONF} v3\n")
    assert "-port=53\n" in text and "+port=5353\n" in text and "+cache-size=500\n" in text
    assert items.diff(store, CONF, 2, 2) == ""
    with pytest.raises(VersionNotFound, match="no version 9"):
        items.diff(store, CONF, 1, 9)


def test_restore_makes_a_new_draft_and_keeps_history(store: ConfigStore) -> None:
    items.save(store, CONF, "good\n", author="ann", base_version=0, template=True)
    items.save(store, CONF, "bad\n", author="bob", base_version=1)
    restored = items.restore(store, CONF, 1, author="cy")
    assert (restored.version, restored.content, restored.restored_from) == (3, "good\n", 1)
    assert restored.template and restored.author == "cy" and "restore version 1" in restored.message
    assert [v.content for v in items.history(store, CONF)] == ["good\n", "bad\n", "good\n"]
    with pytest.raises(StaleSave):
        items.restore(store, CONF, 1, author="cy", base_version=2)


def test_published_marker_moves_only_through_mark_published(store: ConfigStore) -> None:
    items.save(store, CONF, "one\n", author="ann", base_version=0)
    assert items.published(store, CONF) is None and items.state(store, CONF).unpublished
    items.mark_published(store, CONF, 1, actor="flow-run:abc")
    items.save(store, CONF, "two\n", author="ann", base_version=1)  # a draft
    published = items.published(store, CONF)
    assert published is not None and published.content == "one\n"
    state = items.state(store, CONF)
    assert state.latest.version == 2 and state.published is not None
    assert (state.published.version, state.published.by) == (1, "flow-run:abc")
    assert state.unpublished
    items.mark_published(store, CONF, 2, actor="flow-run:def")
    assert not items.state(store, CONF).unpublished
    with pytest.raises(VersionNotFound):
        items.mark_published(store, CONF, 7, actor="x")
    with pytest.raises(VersionNotFound):
        items.mark_published(store, ItemAddress("DNS", "release", "dnsmasq", "none"), 1, actor="x")


def test_unknown_items_and_listing(store: ConfigStore) -> None:
    with pytest.raises(VersionNotFound, match="does not exist"):
        items.get(store, CONF)
    assert items.history(store, CONF) == []
    other = ItemAddress("DNS", "test", "nginx", "conf.d/web.conf")
    for address in (HOSTS, CONF, other):
        items.save(store, address, "x\n", author="ann", base_version=0)
    items.save(
        store, ItemAddress("WEB", "release", "nginx", "a.conf"), "y", author="a", base_version=0
    )
    assert store.list_items("DNS") == sorted([HOSTS, CONF, other], key=str)
    assert store.list_items("DNS", "test") == [other]
    assert store.list_items("NONE") == []
    items.mark_published(store, CONF, 1, actor="flow-run:r")
    states = {str(s.latest.address): s.unpublished for s in items.states(store, "DNS", "release")}
    assert states == {str(CONF): False, str(HOSTS): True}


def test_variables_are_versioned_and_secrets_masked(store: ConfigStore, box: SecretBox) -> None:
    variables.set_value(store, box, ENV, "upstream", "10.0.0.1", author="ann")
    variables.set_value(store, box, ENV, "upstream", "10.0.0.2", author="bob", base_version=1)
    variables.set_value(store, box, ENV, "db_password", "hunter2-secret", author="ann", secret=True)
    assert [v.shown for v in variables.history(store, ENV, "upstream")] == ["10.0.0.1", "10.0.0.2"]
    shown = variables.get(store, ENV, "db_password")
    assert shown.shown == f"{MASK} (v1)" and shown.secret
    listing = {v.name: v.shown for v in variables.listing(store, ENV)}
    assert listing == {"db_password": f"{MASK} (v1)", "upstream": "10.0.0.2"}
    assert variables.reveal(store, box, ENV, "db_password") == "hunter2-secret"
    records = store.variable_versions(ENV, "db_password")
    assert "hunter2" not in repr(records) and "hunter2" not in repr(variables.listing(store, ENV))
    with pytest.raises(StaleSave) as refused:
        variables.set_value(
            store, box, ENV, "db_password", "other-secret", author="c", secret=True, base_version=0
        )
    message = f"{refused.value} {refused.value.hint} {refused.value!r}"
    assert "hunter2" not in message and "other-secret" not in message and MASK in message
    assert refused.value.attempted is None
    with pytest.raises(StaleSave, match="10.0.0.2"):
        variables.set_value(store, box, ENV, "upstream", "10.0.0.3", author="c", base_version=1)
    resolved = variables.resolved(store, box, ENV)
    assert resolved.values == {"upstream": "10.0.0.2", "db_password": "hunter2-secret"}
    assert "hunter2" not in repr(resolved)
    assert resolved.redact("pw=hunter2-secret\n") == f"pw={MASK} (v1)\n"


def test_templates_render_with_the_environment_variables(
    store: ConfigStore, box: SecretBox
) -> None:
    variables.set_value(store, box, ENV, "upstream", "10.0.0.9", author="ann")
    variables.set_value(store, box, ENV, "token", "s3cr3t-value", author="ann", secret=True)
    source = "server={{ upstream }}\nauth={{ token }}\n"
    saved = items.save(store, CONF, source, author="ann", base_version=0, template=True)
    rendered = render_version(store, saved, box=box)
    assert rendered.content == "server=10.0.0.9\nauth=s3cr3t-value\n"
    assert rendered.shown == f"server=10.0.0.9\nauth={MASK} (v1)\n"
    assert "s3cr3t" not in repr(rendered)
    plain = items.save(store, HOSTS, "{{ not_a_template }}\n", author="ann", base_version=0)
    assert render_version(store, plain, box=box).content == "{{ not_a_template }}\n"


def test_a_variable_pointing_at_an_unknown_vault_path_is_named(
    store: ConfigStore, box: SecretBox, fake_vault: FakeVault
) -> None:
    reader = VaultReader(hvac.Client(url=fake_vault.url, token=VAULT_TOKEN))
    reader.client.secrets.kv.v2.create_or_update_secret(path="dns/api", secret={"key": "k-123"})
    variables.set_vault_reference(
        store, ENV, "api_key", "secret/data/dns/api#key", author="ann", reader=reader
    )
    assert variables.get(store, ENV, "api_key").shown == f"{MASK} (v1)"
    saved = items.save(
        store, CONF, "key={{ api_key }}\n", author="a", base_version=0, template=True
    )
    assert render_version(store, saved, box=box, reader=reader).content == "key=k-123\n"
    with pytest.raises(UnknownVaultPath, match="secret/dns/missing does not exist"):
        variables.set_vault_reference(
            store, ENV, "other", "secret/dns/missing#key", author="ann", reader=reader
        )
    variables.set_vault_reference(store, ENV, "gone", "secret/dns/gone#key", author="ann")
    with pytest.raises(UnknownVaultPath, match=r"\$gone.*secret/dns/gone"):
        render_version(store, saved, box=box, reader=reader)
    with pytest.raises(UnknownVaultPath, match="has no key 'nokey'"):
        reader.read("secret/dns/api#nokey", what="x")


def test_authors_since_the_published_version(store: ConfigStore) -> None:
    items.save(store, CONF, "1\n", author="ann", base_version=0)
    assert items.authors_since(store, CONF, 1) == {"ann"}
    items.mark_published(store, CONF, 1, actor="flow-run:r")
    items.save(store, CONF, "2\n", author="bob", base_version=1)
    items.save(store, CONF, "3\n", author="cy", base_version=2)
    items.save(store, CONF, "4\n", author="dee", base_version=3)
    assert items.authors_since(store, CONF, 3) == {"bob", "cy"}


def test_rendering_records_the_variable_versions(store: ConfigStore, box: SecretBox) -> None:
    variables.set_value(store, box, ENV, "a", "1", author="ann")
    variables.set_value(store, box, ENV, "a", "2", author="ann")
    variables.set_value(store, box, ENV, "s", "pw-value", author="ann", secret=True)
    saved = items.save(store, CONF, "{{ a }} {{ s }}\n", author="a", base_version=0, template=True)
    rendered = render_version(store, saved, box=box)
    assert rendered.variables.versions == {"a": 2, "s": 1}
    assert "pw-value" not in repr(rendered.variables)


def test_vault_without_the_mount_or_with_a_wrong_token_is_named(fake_vault: FakeVault) -> None:
    elsewhere = VaultConfigStore(hvac.Client(url=fake_vault.url, token=VAULT_TOKEN), mount="kv")
    with pytest.raises(VaultUnavailable, match="no KV v2 engine at 'kv'"):
        items.save(elsewhere, CONF, "x\n", author="a", base_version=0)
    refused = VaultConfigStore(hvac.Client(url=fake_vault.url, token="s.wrong"))
    with pytest.raises(VaultUnavailable, match="permission denied"):
        items.history(refused, CONF)
    gone = VaultConfigStore(hvac.Client(url="http://127.0.0.1:1", token=VAULT_TOKEN, timeout=2))
    with pytest.raises(VaultUnavailable, match="cannot reach Vault"):
        items.history(gone, CONF)


def test_the_published_marker_keeps_the_variable_versions(store: ConfigStore) -> None:
    items.save(store, CONF, "x\n", author="ann", base_version=0)
    items.mark_published(store, CONF, 1, actor="flow-run:a", variables={"ns": 2, "key": 1})
    marker = store.published_marker(CONF)
    assert marker is not None and marker.variables == {"key": 1, "ns": 2}
    items.mark_published(store, CONF, 1, actor="flow-run:b", variables={})
    marker = store.published_marker(CONF)
    assert marker is not None and marker.variables == {} and marker.by == "flow-run:b"
    # many long names: past one Vault custom_metadata value (512 bytes), then fewer again
    many = {f"variable_{n:03d}_{'x' * 90}": n for n in range(60)}
    items.mark_published(store, CONF, 1, actor="flow-run:c", variables=many)
    marker = store.published_marker(CONF)
    assert marker is not None and marker.variables == many
    items.mark_published(store, CONF, 1, actor="flow-run:d", variables={"ns": 3})
    marker = store.published_marker(CONF)
    assert marker is not None and marker.variables == {"ns": 3}
    items.mark_published(store, CONF, 1, actor="flow-run:e")  # recorded nothing: None
    marker = store.published_marker(CONF)
    assert marker is not None and marker.variables is None and marker.version == 1


def test_the_published_rendering_keeps_its_variable_versions(
    store: ConfigStore, box: SecretBox
) -> None:
    variables.set_value(store, box, ENV, "ns", "10.0.0.1", author="ann")
    variables.set_value(store, box, ENV, "key", "k-one", author="ann", secret=True)
    source = "{{ ns }} ns1\n# {{ key }}\n"
    saved = items.save(store, HOSTS, source, author="ann", base_version=0, template=True)
    rendered = render_version(store, saved, box=box)
    assert rendered.used == {"key": 1, "ns": 1}
    items.mark_published(store, HOSTS, 1, actor="flow-run:r1", variables=rendered.used)
    variables.set_value(store, box, ENV, "ns", "10.0.0.2", author="bob")  # not published
    variables.set_value(store, box, ENV, "key", "k-two", author="bob", secret=True)
    variables.set_value(store, box, ENV, "unused", "1", author="bob")
    published = render_published(store, HOSTS, box=box)
    assert published is not None and published.content == "10.0.0.1 ns1\n# k-one\n"
    assert published.shown == f"10.0.0.1 ns1\n# {MASK} (v1)\n"
    assert render_version(store, saved, box=box).content == "10.0.0.2 ns1\n# k-two\n"  # a draft
    again = render_version(store, saved, box=box)
    items.mark_published(store, HOSTS, 1, actor="flow-run:r2", variables=again.used)
    published = render_published(store, HOSTS, box=box)
    assert published is not None and published.content == "10.0.0.2 ns1\n# k-two\n"
    assert render_published(store, CONF, box=box) is None  # never published
    plain = items.save(store, CONF, "{{ ns }}\n", author="ann", base_version=0)
    assert render_version(store, plain, box=box).used == {}


def test_a_marker_without_variable_versions_renders_with_those_of_its_time(
    store: ConfigStore, box: SecretBox
) -> None:
    """A marker moved before markers kept variable versions: the versions current when it was
    published (from the variables' history); a variable saved only later, at its latest."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    variables.set_value(store, box, ENV, "ns", "10.0.0.1", author="ann", at=t0)
    saved = items.save(
        store, HOSTS, "{{ ns }}\n", author="ann", base_version=0, template=True, at=t0
    )
    store.set_published(HOSTS, saved.version, by="flow-run:old", at=t0 + timedelta(hours=1))
    variables.set_value(store, box, ENV, "ns", "10.0.0.2", author="bob", at=t0 + timedelta(days=1))
    assert variables.versions_at(store, ENV, t0 + timedelta(hours=1)) == {"ns": 1}
    published = render_published(store, HOSTS, box=box)
    assert published is not None and published.content == "10.0.0.1\n"
    assert published.variables.versions == {"ns": 1}
