"""The compatible pull endpoint, asked the way seed 000's dns_publish.py asks it: ``requests.get``
with ``project_code``, ``environment``, ``service``, ``filename`` and ``auth_key`` as query
parameters against a real gateway (uvicorn on loopback, ledger on SQLite and PostgreSQL). The
published content comes back under ``/PROJECT/ENV/SERVICE/FILENAME`` and the script's own file
writing puts it where it did before; a wrong or missing token, a token without the project's
rights, a bad filename or an unpublished file get ``code != 0`` and 401/403/400/404, never
content."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from quayside.auth import service
from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.publish_files import rendered_files
from quayside.config.secret_box import SecretBox
from quayside.config.sql_store import SqlConfigStore
from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig
from quayside.ledger.db import make_engine
from quayside.settings import Settings
from testbed.platform import PROJECT_DIR
from testbed.postgres import free_port

CONF = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq.conf")
HOSTS = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq_hosts")
INVENTORY = """\
apps:
  DNS:
    space: ops
    environments:
      release: {}
  WEB:
    space: web
    environments:
      prod: {}
"""


class Gateway:
    def __init__(self, url: str, tokens: dict[str, str], home: Path, ledger_url: str) -> None:
        self.url, self.tokens, self.home, self.ledger_url = url, tokens, home, ledger_url

    @property
    def api(self) -> str:
        return f"{self.url}/api/kerrigan/v1/conf/publish/config/"


@pytest.fixture
def gateway(tmp_path: Path, ledger_url: str) -> Iterator[Gateway]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "quayside.yaml").write_text(INVENTORY)
    engine = make_engine(ledger_url)
    try:
        for name, role, space in (("puller", "REPORTER", "ops"), ("webdev", "DEVELOPER", "web")):
            service.create_user(engine, name)
            service.grant_role(engine, name, role, space=space)
        service.create_user(engine, "gone")
        tokens = {n: service.create_token(engine, n) for n in ("puller", "webdev", "gone")}
        service.revoke_token(engine, tokens["gone"])
        store, box = SqlConfigStore(engine), SecretBox.from_home(home)
        items.save(
            store, CONF, "port=53\naddn-hosts=/etc/dnsmasq_hosts\n", author="a", base_version=0
        )
        items.mark_published(store, CONF, 1, actor="flow-run:r1")
        items.save(store, CONF, "port=5353\n", author="a", base_version=1)  # a draft, never served
        variables.set_value(store, box, EnvAddress("DNS", "release"), "ns", "10.0.0.53", author="a")
        variables.set_value(
            store, box, EnvAddress("DNS", "release"), "key", "k-s3cret", author="a", secret=True
        )
        items.save(store, HOSTS, "{{ ns }} ns1\n# {{ key }}\n", author="a", base_version=0,
                   template=True)  # fmt: skip
        items.mark_published(store, HOSTS, 1, actor="flow-run:r1")
    finally:
        engine.dispose()
    settings = Settings(
        home=home,
        database_url=ledger_url,
        inventory_path=home / "quayside.yaml",
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        prefect_host="127.0.0.1",
        prefect_port=1,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, GatewayConfig()),
            host="127.0.0.1",
            port=settings.gateway_port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "gateway did not start"
        time.sleep(0.05)
    try:
        yield Gateway(settings.gateway_url, tokens, home, ledger_url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def get_config_details(api: str, token: str, project_code: str, environment: str, service: str,
                       filename: str) -> Any:  # fmt: skip
    """dns_publish.py's ConfApi.get_config_details, as the seed has it (without its exit())."""
    _params = {'project_code': project_code, 'environment': environment, 'service': service,
               'filename': filename, 'auth_key': token}  # fmt: skip
    res = requests.get(api, params=_params, timeout=30)
    ret = json.loads(res.content)
    if ret["code"] == 0:
        return ret["data"]
    return None


def create_config_file(conf_path: str, config_data: dict[str, str]) -> str:
    """dns_publish.py's ConfApi.create_config_file, as the seed has it."""
    for k, v in config_data.items():
        config_file = conf_path + k
        dir_name, _ = os.path.split(config_file)
        if not os.path.exists(dir_name):
            os.makedirs(dir_name)
        with open(config_file, "w") as f:
            f.write(v)
    return config_file


def test_the_seed_script_gets_the_published_files(gateway: Gateway, tmp_path: Path) -> None:
    token = gateway.tokens["puller"]
    data = get_config_details(gateway.api, token, "DNS", "release", "dnsmasq", "dnsmasq.conf")
    assert data == {"/DNS/release/dnsmasq/dnsmasq.conf": "port=53\naddn-hosts=/etc/dnsmasq_hosts\n"}
    written = create_config_file(str(tmp_path / "conf"), data)
    assert written == str(tmp_path / "conf" / "DNS/release/dnsmasq/dnsmasq.conf")
    assert Path(written).read_text() == "port=53\naddn-hosts=/etc/dnsmasq_hosts\n"
    hosts = get_config_details(gateway.api, token, "DNS", "release", "dnsmasq", "dnsmasq_hosts")
    assert hosts == {"/DNS/release/dnsmasq/dnsmasq_hosts": "10.0.0.53 ns1\n# k-s3cret\n"}
    answer = requests.get(gateway.api, cookies={"auth_key": token}, timeout=30, params={
        "project_code": "DNS", "environment": "release", "service": "dnsmasq",
        "filename": "dnsmasq.conf"})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["code"] == 0


@pytest.mark.parametrize(
    ("who", "params", "status", "says"),
    [
        (None, {}, 401, "missing token"),
        ("qs_000000000000_" + "0" * 64, {}, 401, "unknown token"),
        ("not-a-token", {}, 401, "malformed"),
        ("gone", {}, 401, "revoked"),
        ("webdev", {}, 403, "webdev needs REPORTER or higher in project 'DNS'"),
        ("puller", {"project_code": "WEB", "environment": "prod"}, 403, "puller needs REPORTER"),
        ("puller", {"project_code": "MAIL"}, 403, "no app of quayside.yaml"),
        ("puller", {"filename": "../../etc/passwd"}, 400, "filename: '../../etc/passwd'"),
        ("puller", {"filename": "/etc/passwd"}, 400, "filename: '/etc/passwd' is absolute"),
        ("puller", {"filename": "a\nb"}, 400, "filename: 'a\\nb' contains a newline"),
        ("puller", {"filename": "dnsmasq.conf\x00.txt"}, 400, "filename: contains a NUL byte"),
        ("puller", {"filename": ""}, 400, "filename: required"),
        ("puller", {"project_code": ""}, 400, "project_code: required"),
        ("puller", {"environment": "prod"}, 404, "'prod' is not an environment of app 'DNS'"),
        ("puller", {"filename": "never.conf"}, 404, "has no published version"),
        ("gone", {"filename": "../../etc/passwd"}, 401, "revoked"),  # the token comes first
    ],
)
def test_refusals_never_carry_content(
    gateway: Gateway, who: str | None, params: dict[str, str], status: int, says: str
) -> None:
    query = {"project_code": "DNS", "environment": "release", "service": "dnsmasq",
             "filename": "dnsmasq.conf"} | params  # fmt: skip
    token = gateway.tokens.get(who, who) if who else None
    if token is not None:
        query["auth_key"] = token
    answer = requests.get(gateway.api, params=query, timeout=30)
    body = answer.json()
    assert answer.status_code == status and body["code"] == status != 0
    assert says in body["msg"] and body["msg"] == body["error"]
    assert "data" not in body and "port=" not in answer.text
    assert get_config_details(gateway.api, token or "", *query_args(query)) is None


def test_a_nul_byte_sent_as_percent_00_is_refused(gateway: Gateway) -> None:
    """The NUL as it arrives in a hand-written URL (``%00``), not re-encoded by a client."""
    token = gateway.tokens["puller"]
    url = (f"{gateway.api}?project_code=DNS&environment=release&service=dnsmasq"
           f"&filename=dnsmasq.conf%00.txt&auth_key={token}")  # fmt: skip
    answer = requests.get(url, timeout=30)
    body = answer.json()
    assert answer.status_code == 400 and body["code"] == 400
    assert "filename: contains a NUL byte" in body["msg"]
    assert "data" not in body and "port=" not in answer.text


def query_args(query: dict[str, str]) -> tuple[str, str, str, str]:
    return query["project_code"], query["environment"], query["service"], query["filename"]


def test_the_token_is_never_logged(
    gateway: Gateway, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    token = gateway.tokens["puller"]
    with caplog.at_level(logging.INFO):
        get_config_details(gateway.api, token, "DNS", "release", "dnsmasq", "dnsmasq.conf")
        get_config_details(gateway.api, token[:-1] + "f", "DNS", "release", "dnsmasq", "x.conf")
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "/api/kerrigan/v1/conf/publish/config/" in logged  # the access log saw the requests
    secret_part = token.split("_")[2]
    assert secret_part not in logged and "auth_key" not in logged


def publish(store: SqlConfigStore, box: SecretBox, address: ItemAddress) -> None:
    """What config-publish does to the config center once every host has the files: render the
    latest version (rendered_files, as the flow does) and move the marker with the variable
    versions that rendering used (the flow's _mark_published)."""
    files, _ = rendered_files(store, [(address, None)], box, None)
    for f in files:
        items.mark_published(store, f.address, f.version, actor="flow-run:p", variables=f.variables)


def cli_get_published(gateway: Gateway, address: ItemAddress) -> str:
    """``quayside config get --published --rendered`` in a separate process, as a user runs it."""
    environ = {k: v for k, v in os.environ.items() if k not in ("QUAYSIDE_TOKEN", "VAULT_ADDR",
               "VAULT_TOKEN", "QUAYSIDE_CONFIG_BACKEND")}  # fmt: skip
    environ |= {
        "QUAYSIDE_DATABASE_URL": gateway.ledger_url,
        "QUAYSIDE_HOME": str(gateway.home),
        "QUAYSIDE_INVENTORY": str(gateway.home / "quayside.yaml"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "config", "get", str(address), "--published",
         "--rendered"],
        env=environ, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_variable_changed_after_the_publish_is_not_served_until_published(
    gateway: Gateway,
) -> None:
    token = gateway.tokens["puller"]
    env = EnvAddress("DNS", "release")
    engine = make_engine(gateway.ledger_url)
    try:
        store, box = SqlConfigStore(engine), SecretBox.from_home(gateway.home)
        publish(store, box, HOSTS)  # v1 with ns v1 and key v1
        marker = store.published_marker(HOSTS)
        assert marker is not None and marker.variables == {"key": 1, "ns": 1}
        variables.set_value(store, box, env, "ns", "10.0.0.54", author="b", base_version=1)
        variables.set_value(store, box, env, "key", "k-n3w", author="b", secret=True)
        pulled = get_config_details(
            gateway.api, token, "DNS", "release", "dnsmasq", "dnsmasq_hosts"
        )
        assert pulled == {"/DNS/release/dnsmasq/dnsmasq_hosts": "10.0.0.53 ns1\n# k-s3cret\n"}
        assert cli_get_published(gateway, HOSTS) == "10.0.0.53 ns1\n# •••• (v1)\n"
        publish(store, box, HOSTS)  # the next publish takes the new variables
        pulled = get_config_details(
            gateway.api, token, "DNS", "release", "dnsmasq", "dnsmasq_hosts"
        )
        assert pulled == {"/DNS/release/dnsmasq/dnsmasq_hosts": "10.0.0.54 ns1\n# k-n3w\n"}
        assert cli_get_published(gateway, HOSTS) == "10.0.0.54 ns1\n# •••• (v2)\n"
    finally:
        engine.dispose()


def test_a_marker_from_before_variable_versions_serves_the_variables_of_its_time(
    gateway: Gateway,
) -> None:
    """The fixture's markers were moved without variable versions (as before migration 0010):
    a variable saved after that publish is not served."""
    engine = make_engine(gateway.ledger_url)
    try:
        store, box = SqlConfigStore(engine), SecretBox.from_home(gateway.home)
        marker = store.published_marker(HOSTS)
        assert marker is not None and marker.variables is None
        variables.set_value(store, box, EnvAddress("DNS", "release"), "ns", "10.9.9.9", author="b")
    finally:
        engine.dispose()
    pulled = get_config_details(
        gateway.api, gateway.tokens["puller"], "DNS", "release", "dnsmasq", "dnsmasq_hosts"
    )
    assert pulled == {"/DNS/release/dnsmasq/dnsmasq_hosts": "10.0.0.53 ns1\n# k-s3cret\n"}
