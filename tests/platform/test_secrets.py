"""Secret references from quayside.yaml (quayside.runs.secrets): environment variables, Vault KV
version 2 (a loopback stand-in answering as Vault's API documents it) and Prefect Secret blocks
(the session platform)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from quayside.errors import ConfigError
from quayside.inventory.models import SecretRef
from quayside.runs.secrets import resolve_secret

TOKEN = "hvs.test-token"

#: the KV v2 store behind the stand-in: mount "secret", path -> data
STORE: dict[str, dict[str, str]] = {"quayside/gitlab": {"token": "glpat-from-vault"}}


class VaultKV2(BaseHTTPRequestHandler):
    """``GET /v1/<mount>/data/<path>`` of the KV secrets engine, version 2, as documented at
    https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2#read-secret-version:
    the token in ``X-Vault-Token``; 200 with ``{"data": {"data": ..., "metadata": ...}}``,
    403 ``{"errors": ["permission denied"]}`` for a wrong token, 404 ``{"errors": []}`` for
    a path with no secret."""

    requests: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        VaultKV2.requests.append((self.path, self.headers.get("X-Vault-Token")))
        if self.headers.get("X-Vault-Token") != TOKEN:
            self._answer(403, {"errors": ["permission denied"]})
            return
        prefix = "/v1/secret/data/"
        path = self.path.split("?", 1)[0]
        if not path.startswith(prefix) or path[len(prefix) :] not in STORE:
            self._answer(404, {"errors": []})
            return
        data = STORE[path[len(prefix) :]]
        self._answer(
            200,
            {
                "request_id": "b5c6a4d1-0000-0000-0000-000000000000",
                "lease_id": "",
                "renewable": False,
                "lease_duration": 0,
                "data": {
                    "data": data,
                    "metadata": {
                        "created_time": "2026-11-21T10:00:00.000000Z",
                        "custom_metadata": None,
                        "deletion_time": "",
                        "destroyed": False,
                        "version": 2,
                    },
                },
                "wrap_info": None,
                "warnings": None,
                "auth": None,
            },
        )

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), VaultKV2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("VAULT_ADDR", url)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    VaultKV2.requests.clear()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_a_vault_reference_reads_kv_v2_with_the_token(vault: str) -> None:
    ref = SecretRef(vault="secret/data/quayside/gitlab#token")
    assert resolve_secret(ref) == "glpat-from-vault"
    assert VaultKV2.requests == [("/v1/secret/data/quayside/gitlab", TOKEN)]


@pytest.mark.parametrize(
    ("reference", "token", "expected"),
    [
        ("secret/data/quayside/gitlab#password", TOKEN, "has no key 'password'"),
        ("secret/data/quayside/nothing#token", TOKEN, "cannot read vault path"),
        ("secret/data/quayside/gitlab#token", "hvs.wrong", "cannot read vault path"),
    ],
)
def test_vault_failures_name_the_reference_never_a_value(
    vault: str, monkeypatch: pytest.MonkeyPatch, reference: str, token: str, expected: str
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", token)
    with pytest.raises(ConfigError, match=expected) as caught:
        resolve_secret(SecretRef(vault=reference), name="apps.shop.webhook_secret")
    text = f"{caught.value} {caught.value.hint or ''}"
    assert "apps.shop.webhook_secret" in text
    assert "glpat-from-vault" not in text and TOKEN not in text
    assert caught.value.hint


def test_vault_without_an_address_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    with pytest.raises(ConfigError, match="VAULT_ADDR is not set") as caught:
        resolve_secret(SecretRef(vault="secret/data/quayside/gitlab#token"))
    assert caught.value.hint


def test_an_environment_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUAYSIDE_TEST_SECRET", "s3cret")
    assert resolve_secret(SecretRef(env="QUAYSIDE_TEST_SECRET")) == "s3cret"
    monkeypatch.delenv("QUAYSIDE_TEST_SECRET")
    with pytest.raises(ConfigError, match="QUAYSIDE_TEST_SECRET is not set"):
        resolve_secret(SecretRef(env="QUAYSIDE_TEST_SECRET"))


@pytest.mark.xdist_group("platform-2")
@pytest.mark.prefect
def test_a_prefect_secret_block_reference(platform: Any) -> None:
    from prefect.blocks.system import Secret

    Secret(value="from-a-block").save("quayside-test-secret", overwrite=True)
    assert resolve_secret(SecretRef(prefect_secret="quayside-test-secret")) == "from-a-block"
    with pytest.raises(ConfigError, match="no Prefect Secret block 'quayside-no-such'"):
        resolve_secret(SecretRef(prefect_secret="quayside-no-such"))
