"""``回滚 APP ENV`` / ``rollback APP ENV`` in DingTalk (callbacks built from DingTalk's public
outgoing-robot format, testbed.dingtalk) rolls back what the app serves, like ``quayside
rollback``: a config app's rollback is a config-publish of the earlier versions, an image app's
an image release of the earlier digest; a hello release is refused, never rolled back as code.
The run's deployment and parameters are read back through the Prefect API."""

from __future__ import annotations

import pytest

from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, mark_running, start_release
from quayside.runs import read_run
from tests.platform.test_gateway_hooks import chat, reply_text
from tests.platform.test_gateway_server import Gateway, gateway_fixture  # noqa: F401

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect]

DIGESTS = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)


def served(gateway: Gateway, app: str, env: str, kind: ReleaseKind, **fields: object) -> int:
    engine = gateway.engine()
    try:
        row = start_release(engine, app, env, kind, requested_by="dev", **fields)  # type: ignore[arg-type]
        mark_running(engine, row.id)
        finish_release(engine, row.id, ReleaseStatus.succeeded)
        return int(row.id)
    finally:
        engine.dispose()


def started_run(gateway: Gateway, text: str) -> tuple[str, dict[str, object]]:
    reply = reply_text(chat(gateway, text))
    assert "started: " in reply and "/runs/flow-run/" in reply, reply
    run_id = reply.rsplit("/", 1)[1].strip()
    gateway.runs.append(run_id)
    run = read_run(run_id)
    return reply, dict(run.parameters)


def config_release(gateway: Gateway, version: int) -> int:
    details = {"service": "dnsmasq", "files": {"hosts": {"version": version}}}
    return served(
        gateway, "web", "test", ReleaseKind.config, version=f"v{version}", details=details
    )


def test_chat_rollback_of_a_config_app_republishes_the_earlier_versions(gateway: Gateway) -> None:
    config_release(gateway, 1)
    current = config_release(gateway, 2)
    reply, parameters = started_run(gateway, "回滚 web test")
    assert "回滚 / rollback web → test" in reply
    assert parameters["service"] == "dnsmasq" and parameters["versions"] == {"hosts": 1}
    assert parameters["rollback_of"] == current and parameters["requested_by"] == "dev"
    assert "to" not in parameters  # config-publish's parameters, not the code rollback's


def test_chat_rollback_of_an_image_app_releases_the_earlier_digest(gateway: Gateway) -> None:
    for n, digest in enumerate(DIGESTS, 1):
        current = served(
            gateway,
            "docs",
            "test",
            ReleaseKind.image,
            version=f"1.0.{n}",
            image_digest=digest,
            details={"digest": digest, "config_files": {"app.env": n}},
        )
    _, parameters = started_run(gateway, "rollback docs test")
    assert parameters["version_or_digest"] == DIGESTS[0]
    assert parameters["config_versions"] == {"app.env": 1}
    assert parameters["rollback_of"] == current and parameters["requested_by"] == "dev"


def test_chat_rollback_of_a_hello_release_is_refused(gateway: Gateway) -> None:
    served(gateway, "docs", "dev", ReleaseKind.hello, version="hello")
    reply = reply_text(chat(gateway, "rollback docs dev"))
    assert reply.startswith("失败 / failed: the newest release is a hello release"), reply
    assert "/runs/flow-run/" not in reply


def test_chat_rollback_by_a_reporter_is_refused_before_the_releases_are_read(
    gateway: Gateway,
) -> None:
    config_release(gateway, 1)
    config_release(gateway, 2)
    reply = reply_text(chat(gateway, "回滚 web test", staff_id="reporter-staff-id"))
    assert "/runs/flow-run/" not in reply, reply
    assert "DEVELOPER" in reply, reply  # the role it takes, not what the app serves
    for detail in ("dnsmasq", "v1", "v2"):
        assert detail not in reply, reply
