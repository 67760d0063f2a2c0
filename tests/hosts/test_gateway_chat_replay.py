"""The review's DingTalk replay against real gateway apps (security review, issue 13 item 6):
two gateway instances and a restarted one share a ledger; a (timestamp, sign) pair one of them
accepted, replayed to another with a MASTER as sender, is refused with 401 before anything is
looked at, and so is a msgId resent under a new signature. No Prefect server is needed: a
refused callback never gets that far."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from quayside.auth import service
from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig
from quayside.ledger.db import make_engine
from quayside.notify.dingtalk_signing import compute_signature
from quayside.settings import Settings
from testbed import FIXTURES_DIR

FIXTURES = FIXTURES_DIR
CALLBACK = json.loads((FIXTURES / "dingtalk" / "outgoing_text.json").read_text(encoding="utf-8"))
SECRET = CALLBACK["app_secret"]


def gateway(home: Path, ledger_url: str) -> TestClient:
    """A gateway app as `quayside up` builds it (each call: another process)."""
    settings = Settings(
        home=home,
        database_url=ledger_url,
        inventory_path=home / "quayside.yaml",
        gateway_host="127.0.0.1",
        gateway_port=1,
        prefect_host="127.0.0.1",
        prefect_port=1,
    )
    return TestClient(create_app(settings, GatewayConfig(dingtalk_app_secret=SECRET)))


def callback(
    client: TestClient, timestamp: str, *, sender: str, msg_id: str, text: str
) -> httpx.Response:
    body: dict[str, Any] = copy.deepcopy(CALLBACK["body"])
    body.update(
        senderStaffId=sender,
        msgId=msg_id,
        text={"content": text},
        sessionWebhookExpiredTime=1,  # no reply POST: the answer is the response body
    )
    headers = {"timestamp": timestamp, "sign": compute_signature(timestamp, SECRET)}
    return client.post("/chatops/dingtalk", json=body, headers=headers)


@pytest.fixture
def home(tmp_path: Path, ledger_url: str) -> Path:
    (tmp_path / "quayside.yaml").write_text(
        (FIXTURES / "gateway" / "inventory.yaml").read_text(encoding="utf-8")
    )
    engine = make_engine(ledger_url)
    try:
        service.create_user(engine, "dev", dingtalk_id="dev-staff")
        service.create_user(engine, "boss", dingtalk_id="boss-staff")
        service.grant_role(engine, "dev", "DEVELOPER", space="team")
        service.grant_role(engine, "boss", "MASTER", space="team")
    finally:
        engine.dispose()
    return tmp_path


def test_replayed_signature_is_refused_by_another_and_a_restarted_gateway(
    home: Path, ledger_url: str
) -> None:
    first, second = gateway(home, ledger_url), gateway(home, ledger_url)
    timestamp = str(int(time.time() * 1000))
    ok = callback(first, timestamp, sender="dev-staff", msg_id="m-dev", text="help")
    assert ok.status_code == 200, ok.text
    replay = callback(
        second, timestamp, sender="boss-staff", msg_id="m-boss", text="rollback web prod"
    )
    assert replay.status_code == 401, replay.text
    error = replay.json()
    assert error["error"] == (
        f"this signed DingTalk request (timestamp {timestamp}) was already received; "
        "a signature is accepted once"
    )
    assert "send the chat command again" in error["hint"]
    restarted = gateway(home, ledger_url)
    again = callback(
        restarted, timestamp, sender="boss-staff", msg_id="m-boss-2", text="rollback web prod"
    )
    assert again.status_code == 401
    assert "already received" in again.json()["error"]


def test_resent_msg_id_is_refused(home: Path, ledger_url: str) -> None:
    first, second = gateway(home, ledger_url), gateway(home, ledger_url)
    now = int(time.time() * 1000)
    assert callback(first, str(now), sender="dev-staff", msg_id="m-1", text="help").is_success
    resent = callback(second, str(now + 1), sender="boss-staff", msg_id="m-1", text="help")
    assert resent.status_code == 401
    assert resent.json()["error"] == (
        "DingTalk message 'm-1' was already received; a message is carried out once"
    )
    fresh = callback(second, str(now + 2), sender="boss-staff", msg_id="m-2", text="help")
    assert fresh.status_code == 200, fresh.text
