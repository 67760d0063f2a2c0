"""notify_release_event loading blocks by name from a real Prefect API (`quayside up`), sending
to the loopback receivers of tests/unit/test_notify.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from quayside.blocks.notify_dingtalk import DingTalkRobot
from quayside.blocks.notify_wecom import WeComRobot
from quayside.tasks.notify import notify_release_event
from testbed.platform import Platform
from tests.unit.test_notify import (  # noqa: F401 - fixtures
    DT_SECRET,
    Receivers,
    assert_no_secrets,
    receivers,
    rx,
)

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]


def test_blocks_loaded_by_name_send_and_failures_only_warn(
    platform: Platform,
    rx: Receivers,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inventory = tmp_path / "quayside.yaml"
    inventory.write_text(
        "apps:\n"
        "  web:\n"
        "    notify: [quayside-dingtalk-robot/qs-test-ops, quayside-wecom-robot/qs-test-bad,\n"
        "             quayside-wecom-robot/qs-test-never-saved]\n"
        "    environments: {prod: {}}\n"
    )
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(inventory))
    caplog.set_level(logging.DEBUG)
    with temporary_settings({PREFECT_API_URL: platform.api_url}):
        DingTalkRobot(webhook_url=SecretStr(rx.dingtalk_url), secret=SecretStr(DT_SECRET)).save(
            "qs-test-ops", overwrite=True
        )
        WeComRobot(
            webhook_url=SecretStr(rx.wecom_url.split("key=")[0] + "key=not-a-robot-key-0000")
        ).save("qs-test-bad", overwrite=True)
        sent = notify_release_event(
            app="web", env="prod", event="approval_needed", version="v2", actor="bob"
        )
    assert sent == 1
    (ding,) = [r for r in rx.requests if r.path == "/robot/send"]
    assert ding.json["markdown"]["title"] == "[Quayside] web prod: 待审批 / Approval needed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("qs-test-bad" in w and "93000" in w for w in warnings), warnings
    assert any("qs-test-never-saved" in w for w in warnings), warnings
    assert_no_secrets(caplog.text)
    assert "not-a-robot-key-0000" not in caplog.text
