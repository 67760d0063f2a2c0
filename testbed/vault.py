"""A loopback HTTP server answering HashiCorp Vault's KV v2 API as its documentation describes
(https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2), for testing the config
center's Vault backend through hvac without a Vault server. The exchanges it must reproduce are
in ``testbed/fixtures/vault/kv2_exchanges.json`` (each with its doc reference) and
``tests/hosts/test_config_vault_api.py`` replays them against it.

Implemented: ``POST|PUT /v1/{mount}/data/{path}`` (with ``options.cas``), ``GET
/v1/{mount}/data/{path}[?version=N]``, ``GET|POST /v1/{mount}/metadata/{path}``, ``LIST
/v1/{mount}/metadata/{path}`` (and ``GET …?list=true``), for one KV v2 mount; every request
needs the ``X-Vault-Token`` it was started with (403 ``permission denied`` otherwise).
custom_metadata beyond Vault's limits (64 keys; keys of 1-128 and values of 1-512 bytes,
printable) is refused with Vault's 400 and message.
Versions beyond ``max_versions`` are dropped oldest first, as Vault does (10 when unset).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

CAS_MISMATCH = "check-and-set parameter did not match the current version"
DEFAULT_MAX_VERSIONS = 10
CUSTOM_METADATA_LIMITS = (64, 128, 512)
"""keys, key bytes, value bytes: vault-plugin-secrets-kv path_metadata.go's
validateCustomMetadata (what a Vault of KV plugin 0.10+ refuses custom_metadata beyond)."""


def _custom_metadata_problems(custom: dict[str, Any]) -> list[str]:
    """validateCustomMetadata's messages for ``custom`` (empty when Vault would take it)."""
    prefix = "custom_metadata validation failed"
    most_keys, key_bytes, value_bytes = CUSTOM_METADATA_LIMITS
    if len(custom) > most_keys:
        return [f"{prefix}: payload must contain at most {most_keys} keys, provided {len(custom)}"]
    problems = []
    for key, raw in custom.items():
        value = str(raw)
        size = len(key.encode())
        if not 0 < size <= key_bytes:
            problems.append(
                f"{prefix}: length of key {json.dumps(key)} is {size} but must be "
                f"0 < len(key) <= {key_bytes}"
            )
        size = len(value.encode())
        if not 0 < size <= value_bytes:
            problems.append(
                f"{prefix}: length of value for key {json.dumps(key)} is {size} but must be "
                f"0 < len(value) <= {value_bytes}"
            )
        if not key.isprintable():
            problems.append(
                f"{prefix}: key {json.dumps(key)} ({key}) contains unprintable characters"
            )
        if not value.isprintable():
            problems.append(
                f"{prefix}: value for key {json.dumps(key)} contains unprintable characters"
            )
    return problems


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, as Vault


@dataclass
class _Key:
    created_time: str
    updated_time: str
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"
    custom_metadata: dict[str, str] | None = None


class FakeVault:
    """The server's state (one KV v2 mount) and its HTTP front."""

    def __init__(self, token: str, mount: str = "secret") -> None:
        self.token = token
        self.mount = mount
        self.keys: dict[str, _Key] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeVault:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # the API -------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, token: str | None, body: Any) -> tuple[int, Any]:
        """One request → (status, JSON body or None)."""
        split = urlsplit(raw_path)
        query = parse_qs(split.query)
        path = unquote(split.path)
        with self._lock:
            self.requests.append((method, path))
            if token != self.token:
                return 403, {"errors": ["permission denied"]}
            prefix = f"/v1/{self.mount}/"
            if not path.startswith(prefix):
                return 404, {"errors": [f'no handler for route "{path[4:]}"']}
            kind, _, key = path[len(prefix) :].partition("/")
            if kind == "data" and method in ("POST", "PUT"):
                return self._write(key, body or {})
            if kind == "data" and method == "GET":
                version = int(query["version"][0]) if "version" in query else None
                return self._read(key, version)
            if kind == "metadata" and (method == "LIST" or query.get("list") == ["true"]):
                return self._list(key)
            if kind == "metadata" and method == "GET":
                return self._metadata(key)
            if kind == "metadata" and method in ("POST", "PUT"):
                return self._write_metadata(key, body or {})
            return 405, {"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]}

    def _version_meta(self, key: _Key, number: int) -> dict[str, Any]:
        v = key.versions[number]
        return {
            "created_time": v["created_time"],
            "custom_metadata": key.custom_metadata,
            "deletion_time": v["deletion_time"],
            "destroyed": v["destroyed"],
            "version": number,
        }

    def _write(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        data = body.get("data")
        if not isinstance(data, dict):
            return 400, {"errors": ["no data provided"]}
        key = self.keys.get(name)
        cas = (body.get("options") or {}).get("cas")
        current = key.current_version if key is not None else 0
        if cas is None and key is not None and key.cas_required:
            return 400, {"errors": ["check-and-set parameter required for this call"]}
        if cas is not None and int(cas) != current:
            return 400, {"errors": [CAS_MISMATCH]}
        now = _now()
        if key is None:
            key = self.keys[name] = _Key(created_time=now, updated_time=now)
        number = key.current_version + 1
        key.versions[number] = {
            "data": data,
            "created_time": now,
            "deletion_time": "",
            "destroyed": False,
        }
        key.current_version = number
        key.updated_time = now
        limit = key.max_versions or DEFAULT_MAX_VERSIONS
        while len(key.versions) > limit:
            del key.versions[min(key.versions)]
            key.oldest_version = min(key.versions)
        return 200, {"data": self._version_meta(key, number)}

    def _read(self, name: str, version: int | None) -> tuple[int, Any]:
        key = self.keys.get(name)
        if key is None or key.current_version == 0:
            return 404, {"errors": []}
        number = version or key.current_version
        if number not in key.versions:
            return 404, {"errors": []}
        return 200, {
            "data": {
                "data": key.versions[number]["data"],
                "metadata": self._version_meta(key, number),
            }
        }

    def _metadata(self, name: str) -> tuple[int, Any]:
        key = self.keys.get(name)
        if key is None:
            return 404, {"errors": []}
        return 200, {
            "data": {
                "cas_required": key.cas_required,
                "created_time": key.created_time,
                "current_version": key.current_version,
                "custom_metadata": key.custom_metadata,
                "delete_version_after": key.delete_version_after,
                "max_versions": key.max_versions,
                "oldest_version": key.oldest_version,
                "updated_time": key.updated_time,
                "versions": {
                    str(n): {
                        "created_time": v["created_time"],
                        "deletion_time": v["deletion_time"],
                        "destroyed": v["destroyed"],
                    }
                    for n, v in sorted(key.versions.items())
                },
            }
        }

    def _write_metadata(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        if "custom_metadata" in body:
            problems = _custom_metadata_problems(body["custom_metadata"] or {})
            if problems:
                listed = "".join(f"\t* {p}\n" for p in problems)
                count = f"{len(problems)} error{'s' if len(problems) > 1 else ''} occurred"
                return 400, {"errors": [f"{count}:\n{listed}\n"]}
        now = _now()
        key = self.keys.get(name)
        if key is None:
            key = self.keys[name] = _Key(created_time=now, updated_time=now)
        if "max_versions" in body:
            key.max_versions = int(body["max_versions"])
        if "cas_required" in body:
            key.cas_required = bool(body["cas_required"])
        if "delete_version_after" in body:
            key.delete_version_after = str(body["delete_version_after"])
        if "custom_metadata" in body:
            key.custom_metadata = {str(k): str(v) for k, v in body["custom_metadata"].items()}
        key.updated_time = now
        return 204, None

    def _list(self, folder: str) -> tuple[int, Any]:
        prefix = folder.rstrip("/") + "/" if folder.strip("/") else ""
        keys: set[str] = set()
        for name in self.keys:
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            head, slash, _ = rest.partition("/")
            keys.add(head + "/" if slash else head)
        if not keys:
            return 404, {"errors": []}
        return 200, {"data": {"keys": sorted(keys)}}

    # HTTP ----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        vault = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:  # quiet
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._send(400, {"errors": ["failed to parse JSON input"]})
                    return
                status, answer = vault.handle(
                    self.command, self.path, self.headers.get("X-Vault-Token"), body
                )
                self._send(status, answer)

            def _send(self, status: int, answer: Any) -> None:
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_LIST = do_DELETE = _serve

        return Handler


VAULT_TOKEN = "s.test-root-token"


@pytest.fixture
def fake_vault() -> Iterator[FakeVault]:
    """A fresh loopback Vault (KV v2 at ``secret``) accepting :data:`VAULT_TOKEN`."""
    server = FakeVault(VAULT_TOKEN).start()
    try:
        yield server
    finally:
        server.stop()
