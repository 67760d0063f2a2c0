"""The loopback Vault answers exactly as Vault's published KV v2 API does: every exchange of
testbed/fixtures/vault/kv2_exchanges.json (built from the documentation, each with its doc
reference) is replayed in order against a fresh server, and status and body must match (times
by shape), and hvac reads through it as it reads a real Vault."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import hvac
import hvac.exceptions
import pytest

from testbed import FIXTURES_DIR
from testbed.vault import VAULT_TOKEN, FakeVault

RECORDED = json.loads((FIXTURES_DIR / "vault" / "kv2_exchanges.json").read_text(encoding="utf-8"))
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z")


def same_shape(expected: Any, actual: Any, where: str = "body") -> None:
    if expected == "<time>":
        assert isinstance(actual, str) and TIME_RE.fullmatch(actual), f"{where}: {actual!r}"
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r}"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)}"
        for key, value in expected.items():
            same_shape(value, actual[key], f"{where}.{key}")
        return
    assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def test_recorded_token_is_the_fixture_token() -> None:
    assert RECORDED["token"] == VAULT_TOKEN


def test_every_documented_exchange_is_answered_as_documented(fake_vault: FakeVault) -> None:
    with httpx.Client(base_url=fake_vault.url) as client:
        for exchange in RECORDED["exchanges"]:
            request, expected = exchange["request"], exchange["response"]
            assert exchange["doc"].startswith("https://developer.hashicorp.com/vault/api-docs")
            answer = client.request(
                request["method"],
                request["path"],
                headers={"X-Vault-Token": request.get("token", VAULT_TOKEN)},
                json=request.get("body"),
            )
            assert answer.status_code == expected["status"], exchange["name"]
            body = answer.json() if answer.content else None
            same_shape(expected["body"], body, exchange["name"])


def test_hvac_reads_and_writes_through_it(fake_vault: FakeVault) -> None:
    client = hvac.Client(url=fake_vault.url, token=VAULT_TOKEN)
    kv = client.secrets.kv.v2
    written = kv.create_or_update_secret(path="app/db", secret={"password": "pw1"}, cas=0)
    assert written["data"]["version"] == 1
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        kv.create_or_update_secret(path="app/db", secret={"password": "pw2"}, cas=0)
    kv.create_or_update_secret(path="app/db", secret={"password": "pw2"}, cas=1)
    latest = kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"password": "pw2"}
    first = kv.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)
    assert first["data"]["data"] == {"password": "pw1"}
    kv.update_metadata(path="app/db", custom_metadata={"published_version": "1"})
    metadata = kv.read_secret_metadata(path="app/db")["data"]
    assert metadata["current_version"] == 2 and set(metadata["versions"]) == {"1", "2"}
    assert metadata["custom_metadata"] == {"published_version": "1"}
    assert kv.list_secrets(path="app")["data"]["keys"] == ["db"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path="app/none", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=fake_vault.url, token="s.wrong").secrets.kv.v2.read_secret_version(
            path="app/db", raise_on_deleted_version=True
        )


def test_versions_past_max_versions_are_dropped_oldest_first(fake_vault: FakeVault) -> None:
    kv = hvac.Client(url=fake_vault.url, token=VAULT_TOKEN).secrets.kv.v2
    for n in range(12):
        kv.create_or_update_secret(path="k", secret={"n": n})
    versions = kv.read_secret_metadata(path="k")["data"]["versions"]
    assert sorted(map(int, versions)) == list(range(3, 13))
