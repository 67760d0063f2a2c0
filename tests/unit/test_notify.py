"""Release notifications against real HTTP receivers on loopback that answer exactly as the
public docs say (fixtures in tests/fixtures/{dingtalk,wecom,slack} carry the references):
DingTalk verifies 加签 and answers errcode 0 / 310000, WeCom checks the key and answers
errcode 0 / 93000 / 40058, Slack answers "ok" / 404 "no_service". No Prefect server: blocks
are instantiated in Python; notify_release_event gets them through a patched loader."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prefect.blocks.abstract import NotificationError
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from pydantic import SecretStr

import quayside.tasks.notify
from quayside.blocks.notify_dingtalk import DingTalkRobot
from quayside.blocks.notify_wecom import WeComRobot
from quayside.notify import ReleaseEvent, dingtalk_markdown, render, truncate_utf8, wecom_markdown
from quayside.notify.dingtalk_signing import signed_webhook_url
from quayside.notify.errors import SendError
from testbed import FIXTURES_DIR
from testbed.platform import free_port

FIXTURES = FIXTURES_DIR
DT_TOKEN = "dt0123456789abcdef0123456789abcdef"  # access_token: secret
DT_SECRET = "SECdingtalk-signing-secret-0123456789"
WECOM_KEY = "693a91f6-7aaa-4bc4-97a0-0ec2s1fa5aaa"
SLACK_PATH = "/services/T0ABCDEF1/B0ABCDEF2/Zq1w2e3r4t5y6u7i8o9p0aSd"
SECRETS = [DT_TOKEN, DT_SECRET, WECOM_KEY, "Zq1w2e3r4t5y6u7i8o9p0aSd"]


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def doc_sign(timestamp: str, secret: str) -> str:
    """加签 per https://open.dingtalk.com/document/group/custom-robot-access (independent of
    quayside.notify.dingtalk_signing): Base64(HmacSHA256(secret, timestamp + "\\n" + secret))."""
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receivers:
    """One loopback server playing DingTalk, WeCom and Slack."""

    base: str
    requests: list[Received] = field(default_factory=list)

    @property
    def dingtalk_url(self) -> str:
        return f"{self.base}/robot/send?access_token={DT_TOKEN}"

    @property
    def wecom_url(self) -> str:
        return f"{self.base}/cgi-bin/webhook/send?key={WECOM_KEY}"

    @property
    def slack_services(self) -> str:
        return f"{self.base}/services"


class Handler(BaseHTTPRequestHandler):
    receivers: Receivers

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        ctype = "text/plain" if isinstance(body, str) else "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        got = Received(parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
        self.receivers.requests.append(got)
        if parts.path == "/robot/send":
            self._dingtalk(got)
        elif parts.path == "/cgi-bin/webhook/send":
            self._wecom(got)
        elif parts.path.startswith("/services/"):
            self._slack(got)
        elif parts.path == "/slow":
            time.sleep(1.5)
            self._answer(200, {"errcode": 0, "errmsg": "ok"})
        elif parts.path == "/generic":
            self._answer(200, "accepted")
        else:
            self._answer(404, "not found")

    def _dingtalk(self, got: Received) -> None:
        ok = fixture("dingtalk/send_response_ok.json")["body"]
        bad_sign = fixture("dingtalk/send_response_sign_mismatch.json")["body"]
        timestamp = (got.query.get("timestamp") or [""])[0]
        sign = (got.query.get("sign") or [""])[0]  # parse_qs undid the urlEncode
        fresh = timestamp.isdigit() and abs(time.time() * 1000 - int(timestamp)) < 3600_000
        if got.query.get("access_token") != [DT_TOKEN]:
            self._answer(200, {"errcode": 300001, "errmsg": "token is not exist"})
        elif not fresh or not hmac.compare_digest(sign, doc_sign(timestamp, DT_SECRET)):
            self._answer(200, bad_sign)
        else:
            self._answer(200, ok)

    def _wecom(self, got: Received) -> None:
        if got.query.get("key") != [WECOM_KEY]:
            answer = fixture("wecom/send_response_invalid_webhook_url.json")
        elif len(got.json["markdown"]["content"].encode()) > 4096:
            answer = fixture("wecom/send_response_content_too_long.json")
        else:
            answer = fixture("wecom/send_response_ok.json")
        self._answer(answer["status"], answer["body"])

    def _slack(self, got: Received) -> None:
        responses = fixture("slack/incoming_webhook.json")["responses"]
        if got.path.rstrip("/") != SLACK_PATH:
            answer = responses["no_service"]
        else:
            try:
                message = got.json
            except ValueError:
                message = None
            if not isinstance(message, dict):
                answer = responses["invalid_payload"]
            elif not (message.get("text") or message.get("attachments") or message.get("blocks")):
                answer = responses["no_text"]
            else:
                answer = responses["ok"]
        self._answer(answer["status"], answer["body"])


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Receivers(base=f"http://127.0.0.1:{server.server_address[1]}")
    Handler.receivers = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def rx(receivers: Receivers) -> Receivers:
    receivers.requests.clear()
    return receivers


def slack_block(rx: Receivers, path: str = SLACK_PATH) -> SlackWebhook:
    """Prefect's SlackWebhook, its Apprise Slack plugin pointed at the local receiver (the same
    per-instance ``webhook_url`` override Prefect itself uses for Slack GovCloud)."""
    block = SlackWebhook(url=SecretStr(f"https://hooks.slack.com{path}"))
    for server in block._apprise_client:
        server.webhook_url = rx.slack_services  # type: ignore[attr-defined]
    return block


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# --- rendering and payloads -------------------------------------------------------------------


def test_render_has_labels_fields_and_run_link() -> None:
    subject, body = render(
        ReleaseEvent(
            app="web",
            env="prod",
            event="succeeded",
            version="v1.4.2",
            actor="alice",
            url="http://127.0.0.1:4200/runs/flow-run/abc",
            details="3 hosts, 0 failed",
        )
    )
    assert subject == "[Quayside] web prod: 发布成功 / Succeeded"
    assert body.splitlines()[0] == "### ✅ 发布成功 / Succeeded"
    assert "- **应用 / App:** web" in body
    assert "- **环境 / Env:** prod" in body
    assert "- **版本 / Version:** v1.4.2" in body
    assert "- **操作人 / By:** alice" in body
    assert "3 hosts, 0 failed" in body
    assert body.endswith("[查看运行 / Open the run](http://127.0.0.1:4200/runs/flow-run/abc)")


@pytest.mark.parametrize(
    ("event", "label"),
    [
        ("approval_needed", "待审批 / Approval needed"),
        ("approved", "已批准 / Approved"),
        ("rejected", "已拒绝 / Rejected"),
        ("failed", "发布失败 / Failed"),
        ("rolled_back", "已回滚 / Rolled back"),
    ],
)
def test_render_every_event(event: str, label: str) -> None:
    subject, body = render(ReleaseEvent("web", "test", event))
    assert subject.endswith(label)
    assert label in body.splitlines()[0]
    assert "Open the run" not in body  # no url, no link


def test_render_drops_non_http_links_and_flattens_inline_values() -> None:
    _, body = render(
        ReleaseEvent("web", "prod", "failed", actor="eve\n# heading", url="javascript:alert(1)")
    )
    assert "javascript" not in body
    assert "- **操作人 / By:** eve # heading" in body


def test_dingtalk_markdown_payload_matches_docs() -> None:
    # shape per https://open.dingtalk.com/document/development/robot-message-type (markdown)
    assert dingtalk_markdown("标题", "### 内容", at_mobiles=["150XXXXXXXX"]) == {
        "msgtype": "markdown",
        "markdown": {"title": "标题", "text": "### 内容\n\n@150XXXXXXXX"},
        "at": {"atMobiles": ["150XXXXXXXX"], "isAtAll": False},
    }


def test_wecom_markdown_payload_matches_docs_and_limit() -> None:
    doc = fixture("wecom/markdown_send.json")
    content = doc["request_body"]["markdown"]["content"]
    assert wecom_markdown(content) == doc["request_body"]
    long = wecom_markdown("发" * 3000)["markdown"]["content"]
    assert len(long.encode()) <= doc["max_content_bytes"]
    assert long.endswith("…")
    assert truncate_utf8("abc", 10) == "abc"


# --- DingTalk ---------------------------------------------------------------------------------


def test_signing_matches_the_doc_example() -> None:
    doc = fixture("dingtalk/custom_robot_send.json")
    assert signed_webhook_url(doc["base_url"], doc["secret"], doc["now_ms"]) == doc["expected_url"]
    query = parse_qs(urlsplit(doc["expected_url"]).query)
    assert query["sign"] == [doc_sign(str(doc["now_ms"]), doc["secret"])]


def test_dingtalk_block_sends_signed_markdown(rx: Receivers) -> None:
    block = DingTalkRobot(
        webhook_url=SecretStr(rx.dingtalk_url),
        secret=SecretStr(DT_SECRET),
        at_mobiles=["13800001111"],
    )
    block.notify("### web 已发布 / released\n\nv1.2", subject="web prod released")
    (got,) = rx.requests
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"
    assert got.json == {
        "msgtype": "markdown",
        "markdown": {
            "title": "web prod released",
            "text": "### web 已发布 / released\n\nv1.2\n\n@13800001111",
        },
        "at": {"atMobiles": ["13800001111"], "isAtAll": False},
    }
    # the receiver accepted the signature (else notify would have raised)
    assert got.query["access_token"] == [DT_TOKEN]
    assert got.query["sign"] == [doc_sign(got.query["timestamp"][0], DT_SECRET)]


def test_dingtalk_bad_sign_raises_without_secrets(
    rx: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    block = DingTalkRobot(
        webhook_url=SecretStr(rx.dingtalk_url), secret=SecretStr("SECnot-the-robot-secret")
    )
    with pytest.raises(SendError) as info:
        block.notify("hello")
    assert info.value.code == 310000
    assert "sign not match" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert_no_secrets(str(info.value), repr(block), caplog.text)
    assert "SECnot-the-robot-secret" not in repr(block)


def test_dingtalk_unsigned_robot_with_signing_required_is_refused(rx: Receivers) -> None:
    with pytest.raises(SendError) as info:
        DingTalkRobot(webhook_url=SecretStr(rx.dingtalk_url)).notify("hello")
    assert info.value.code == 310000


# --- WeCom ------------------------------------------------------------------------------------


def test_wecom_block_sends_markdown(rx: Receivers) -> None:
    WeComRobot(webhook_url=SecretStr(rx.wecom_url)).notify("**v1.2** 已发布", subject="web prod")
    (got,) = rx.requests
    assert got.json == {
        "msgtype": "markdown",
        "markdown": {"content": "**web prod**\n\n**v1.2** 已发布"},
    }


def test_wecom_invalid_key_raises_93000(rx: Receivers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = rx.wecom_url.replace(WECOM_KEY, "00000000-dead-beef-0000-000000000000")
    with pytest.raises(SendError) as info:
        WeComRobot(webhook_url=SecretStr(url)).notify("hello")
    assert info.value.code == 93000
    assert "invalid webhook url" in str(info.value)
    assert "00000000-dead-beef" not in str(info.value) + caplog.text


def test_wecom_long_message_is_cut_to_the_limit(rx: Receivers) -> None:
    WeComRobot(webhook_url=SecretStr(rx.wecom_url)).notify("长" * 5000)
    assert len(rx.requests[0].json["markdown"]["content"].encode()) <= 4096


# --- transport failures -----------------------------------------------------------------------


def test_unreachable_and_timeout_raise_send_error_without_url(rx: Receivers) -> None:
    dead = f"http://127.0.0.1:{free_port()}/cgi-bin/webhook/send?key={WECOM_KEY}"
    with pytest.raises(SendError, match="could not reach the WeCom webhook") as info:
        WeComRobot(webhook_url=SecretStr(dead)).notify("x")
    assert_no_secrets(str(info.value))
    slow = DingTalkRobot(webhook_url=SecretStr(f"{rx.base}/slow?access_token={DT_TOKEN}"))
    slow.timeout_s = 0.5
    with pytest.raises(SendError, match="timed out") as info:
        slow.notify("x")
    assert_no_secrets(str(info.value))
    with pytest.raises(SendError, match="HTTP 404"):
        WeComRobot(webhook_url=SecretStr(f"{rx.base}/nowhere?key={WECOM_KEY}")).notify("x")


# --- Slack (Prefect's SlackWebhook) -------------------------------------------------------------


def test_slack_webhook_posts_and_raises_only_under_raise_on_failure(rx: Receivers) -> None:
    slack_block(rx).notify("web is on prod", "web released")
    (got,) = rx.requests
    assert got.path == SLACK_PATH
    assert got.headers["Content-Type"].startswith("application/json")
    attachment = got.json["attachments"][0]
    assert (attachment["title"], attachment["text"]) == ("web released", "web is on prod")

    disabled = slack_block(rx, "/services/T0DISABLE/B0DISABLE/xxxxxxxxxxxxxxxxxxxxxxxx")
    disabled.notify("lost")  # Prefect's Apprise blocks swallow failures by default
    with pytest.raises(NotificationError) as info, disabled.raise_on_failure():
        disabled.notify("lost")
    assert "error=404" in info.value.log


# --- notify_release_event ---------------------------------------------------------------------


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "quayside.yaml"
    path.write_text(
        "apps:\n"
        "  web:\n"
        "    notify: [quayside-dingtalk-robot/ops, quayside-wecom-robot/bad,\n"
        "             slack-webhook/team, quayside-wecom-robot/missing, custom-webhook/hook,\n"
        "             quayside-dingtalk-robot/dead]\n"
        "    environments: {prod: {}}\n"
        "  quiet:\n"
        "    environments: {prod: {}}\n"
    )
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(path))
    return path


def test_notify_release_event_counts_successes_and_only_warns(
    rx: Receivers,
    inventory: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocks: dict[str, Block] = {
        "quayside-dingtalk-robot/ops": DingTalkRobot(
            webhook_url=SecretStr(rx.dingtalk_url), secret=SecretStr(DT_SECRET)
        ),
        "quayside-wecom-robot/bad": WeComRobot(
            webhook_url=SecretStr(rx.wecom_url.replace(WECOM_KEY, "f" * 36))
        ),
        "slack-webhook/team": slack_block(rx),
        "custom-webhook/hook": CustomWebhookNotificationBlock(
            name="hook", url=f"{rx.base}/generic", json_data={"text": "{{subject}}: {{body}}"}
        ),
        "quayside-dingtalk-robot/dead": DingTalkRobot(
            webhook_url=SecretStr(
                f"http://127.0.0.1:{free_port()}/robot/send?access_token={DT_TOKEN}"
            ),
            secret=SecretStr(DT_SECRET),
        ),
    }

    def load(ref: str) -> Block:
        if ref not in blocks:
            raise ValueError(f"Unable to find block document named {ref.split('/')[1]}")
        return blocks[ref]

    monkeypatch.setattr(quayside.tasks.notify, "_load_block", load)
    caplog.set_level(logging.DEBUG)
    sent = quayside.tasks.notify.notify_release_event(
        app="web",
        env="prod",
        event="failed",
        text="host web-2: health check failed",
        url="http://127.0.0.1:4200/runs/flow-run/1234",
        version="v9",
        actor="alice",
    )
    assert sent == 3  # dingtalk ops, slack team, custom hook
    paths = sorted(r.path for r in rx.requests)
    assert paths == sorted(["/robot/send", "/cgi-bin/webhook/send", SLACK_PATH, "/generic"])
    ding = next(r for r in rx.requests if r.path == "/robot/send").json
    assert ding["markdown"]["title"] == "[Quayside] web prod: 发布失败 / Failed"
    assert (
        "[查看运行 / Open the run](http://127.0.0.1:4200/runs/flow-run/1234)"
        in ding["markdown"]["text"]
    )
    generic = next(r for r in rx.requests if r.path == "/generic").json
    assert generic["text"].startswith("[Quayside] web prod: 发布失败 / Failed: ### ")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings
    assert any("quayside-wecom-robot/bad" in w and "93000" in w for w in warnings)
    assert not any("slack-webhook/team" in w for w in warnings)
    assert any("quayside-wecom-robot/missing" in w and "cannot load" in w for w in warnings)
    assert any("quayside-dingtalk-robot/dead" in w and "could not reach" in w for w in warnings)
    assert_no_secrets(caplog.text, *warnings)


def test_notify_release_event_dingtalk_errcode_returns_zero(
    rx: Receivers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "quayside.yaml"
    path.write_text(
        "apps:\n  web:\n    notify: [quayside-dingtalk-robot/ops]\n    environments: {prod: {}}\n"
    )
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(path))
    wrong = DingTalkRobot(webhook_url=SecretStr(rx.dingtalk_url), secret=SecretStr("SECwrong-one"))
    monkeypatch.setattr(quayside.tasks.notify, "_load_block", lambda ref: wrong)
    caplog.set_level(logging.WARNING)
    assert quayside.tasks.notify.notify_release_event(app="web", env="prod", event="approved") == 0
    (record,) = caplog.records
    assert "310000" in record.getMessage() and "sign not match" in record.getMessage()
    assert "SECwrong-one" not in caplog.text
    assert_no_secrets(caplog.text)


def test_notify_release_event_without_channels_or_inventory(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert (
        quayside.tasks.notify.notify_release_event(app="quiet", env="prod", event="succeeded") == 0
    )
    assert caplog.records == []
    assert (
        quayside.tasks.notify.notify_release_event(app="nope", env="prod", event="succeeded") == 0
    )
    assert "no app 'nope'" in caplog.text
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(inventory.parent / "missing.yaml"))
    assert quayside.tasks.notify.notify_release_event(app="web", env="prod", event="succeeded") == 0
    assert "no such file" in caplog.text


def test_secret_redaction_covers_url_credentials() -> None:
    block = slack_block(Receivers(base="http://127.0.0.1:1"))
    secrets = quayside.tasks.notify._secret_values(block)
    text = f"POST https://hooks.slack.com{SLACK_PATH} failed; token Zq1w2e3r4t5y6u7i8o9p0aSd"
    assert_no_secrets(quayside.tasks.notify.redact(text, secrets))


def test_slack_failure_through_send_to_channels_is_one_redacted_warning(
    rx: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # Apprise logs the webhook URL at DEBUG
    disabled = slack_block(rx, "/services/T0DISABLE/B0DISABLE/Zq1w2e3r4t5y6u7i8o9p0aSd")
    log = logging.getLogger("test.notify")
    sent = quayside.tasks.notify.send_to_channels(
        ["slack-webhook/off"], "s", "b", load=lambda ref: disabled, logger=log
    )
    assert sent == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "test.notify"]
    assert "slack-webhook/off" in warning and "error=404" in warning
    assert "T0DISABLE" not in warning and "Zq1w2e3r4t5y6u7i8o9p0aSd" not in warning
