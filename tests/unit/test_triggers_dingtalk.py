"""DingTalk: callback signatures, callback body, replies, signed webhook URLs (the replay guard:
tests/hosts/test_triggers_replay.py)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from quayside.errors import InputError
from quayside.notify.dingtalk_signing import (
    check_send_response,
    compute_signature,
    signed_webhook_url,
)
from quayside.notify.errors import SendError
from quayside.triggers.dingtalk import OutgoingMessage, reply_payload, verify_signature
from quayside.triggers.errors import SignatureError, StaleTimestampError
from testbed import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "dingtalk"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert data["_doc"]["references"][0]["url"].startswith("https://")
    return data


CALLBACK = load("outgoing_text.json")
SECRET: str = CALLBACK["app_secret"]
TS: str = CALLBACK["headers"]["timestamp"]
SIGN: str = CALLBACK["headers"]["sign"]
NOW: int = CALLBACK["now_ms"]


def test_fixture_signature_verifies() -> None:
    assert compute_signature(TS, SECRET) == SIGN
    verify_signature(SECRET, TS, SIGN, NOW)


def test_signature_window_is_one_hour_both_ways() -> None:
    verify_signature(SECRET, TS, SIGN, int(TS) + 3600 * 1000)
    verify_signature(SECRET, TS, SIGN, int(TS) - 3600 * 1000)
    with pytest.raises(StaleTimestampError):
        verify_signature(SECRET, TS, SIGN, int(TS) + 3600 * 1000 + 1)
    with pytest.raises(StaleTimestampError):
        verify_signature(SECRET, TS, SIGN, int(TS) - 3600 * 1000 - 1)
    with pytest.raises(StaleTimestampError):
        verify_signature(SECRET, TS, SIGN, int(TS) + 61_000, window_s=60)


@pytest.mark.parametrize(
    ("secret", "timestamp", "sign"),
    [
        ("wrong-secret", TS, SIGN),
        (SECRET, TS, SIGN[:-2] + "AA"),
        (SECRET, str(int(TS) + 1), SIGN),  # the timestamp is what is signed
        (SECRET, TS, ""),
        (SECRET, "", SIGN),
        (SECRET, None, SIGN),
        (SECRET, TS, None),
        (SECRET, "12ab", SIGN),
        (SECRET, "-1577262236757", SIGN),
        (SECRET, "١٥٧٧٢٦٢٢٣٦٧٥٧", SIGN),  # non-ASCII digits
        (SECRET, TS, SIGN * 10),
        ("", TS, SIGN),
    ],
)
def test_bad_signatures(secret: str, timestamp: str | None, sign: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_signature(secret, timestamp, sign, NOW)


def test_outgoing_message_fields() -> None:
    msg = OutgoingMessage.model_validate(CALLBACK["body"])
    assert msg.content == "执行dev环境web流水线"
    assert msg.user_id == "user123"
    assert msg.sender_nick == "杨xx"
    assert msg.conversation_type == "2"
    assert msg.is_admin is True
    assert msg.robot_code == "dingtestrobotcode"
    assert msg.at_users[0].dingtalk_id == "$:LWCP_v1:$robot"
    assert msg.reply_url(NOW) == "https://oapi.dingtalk.com/robot/sendBySession?session=xxxxx"


@pytest.mark.parametrize(
    "staff_id", ["user\n| approvals | 1 of 1 |", "a|b", "<img src=x>", "x" * 101]
)
def test_sender_staff_id_outside_name_characters_is_refused(staff_id: str) -> None:
    """senderStaffId is the sender's identity: refused (a 400 naming the field), never cleaned
    into someone else's id."""
    body = {**CALLBACK["body"], "senderStaffId": staff_id}
    with pytest.raises(InputError, match="senderStaffId: a DingTalk user id has letters"):
        OutgoingMessage.model_validate(body)
    assert OutgoingMessage.model_validate({**body, "senderStaffId": "张三-01"}).user_id == "张三-01"


def test_non_text_message_has_no_content() -> None:
    body = {**CALLBACK["body"], "msgtype": "picture", "text": None}
    assert OutgoingMessage.model_validate(body).content is None


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"sessionWebhook": None}, "no sessionWebhook"),
        ({"sessionWebhookExpiredTime": NOW - 1}, "expired"),
        ({"sessionWebhook": "http://oapi.dingtalk.com/robot/sendBySession?s=1"}, "https"),
        ({"sessionWebhook": "https://evil.example/robot/sendBySession"}, "DingTalk host"),
        ({"sessionWebhook": "https://oapi.dingtalk.com.evil.example/x"}, "DingTalk host"),
        ({"sessionWebhook": "https://user@169.254.169.254/latest"}, "DingTalk host"),
    ],
)
def test_reply_url_refuses_unsafe_or_expired(change: dict[str, Any], fragment: str) -> None:
    msg = OutgoingMessage.model_validate({**CALLBACK["body"], **change})
    with pytest.raises(InputError, match=fragment):
        msg.reply_url(NOW)


def test_reply_payload_text_and_markdown() -> None:
    expected = load("custom_robot_send.json")["request_body"]
    assert reply_payload("web 已发布到 prod", ["user123"]) == expected
    md = reply_payload("**done**", ["u1", "u2"], markdown_title="Quayside")
    assert md["msgtype"] == "markdown"
    assert md["markdown"]["title"] == "Quayside"
    assert md["markdown"]["text"].endswith("@u1 @u2")
    assert md["at"] == {"atUserIds": ["u1", "u2"], "isAtAll": False}
    assert reply_payload("x")["at"] == {"atUserIds": [], "isAtAll": False}
    assert len(reply_payload("y" * 10_000)["text"]["content"]) == 5000


def test_signed_webhook_url_matches_documented_algorithm() -> None:
    data = load("custom_robot_send.json")
    url = signed_webhook_url(data["base_url"], data["secret"], data["now_ms"])
    assert url == data["expected_url"]
    query = parse_qs(urlsplit(url).query)
    assert query["sign"] == [compute_signature(str(data["now_ms"]), data["secret"])]
    assert query["access_token"] == ["XXXXXX"]


def test_signed_webhook_url_replaces_old_signature() -> None:
    url = signed_webhook_url("https://oapi.dingtalk.com/robot/send?access_token=t&sign=old", "S", 5)
    assert parse_qs(urlsplit(url).query) == {
        "access_token": ["t"],
        "timestamp": ["5"],
        "sign": [compute_signature("5", "S")],
    }
    with pytest.raises(InputError):
        signed_webhook_url("file:///etc/passwd", "S", 5)
    with pytest.raises(InputError):
        signed_webhook_url("https://oapi.dingtalk.com/robot/send", "", 5)


def test_check_send_response() -> None:
    check_send_response(load("send_response_ok.json")["body"])
    with pytest.raises(SendError) as exc:
        check_send_response(load("send_response_sign_mismatch.json")["body"])
    assert exc.value.code == 310000
    assert "sign not match" in str(exc.value)
    bad_answers: list[object] = [
        {},
        {"errcode": "0"},
        {"errcode": True},
        [],
        None,
        {"errmsg": "ok"},
    ]
    for bad in bad_answers:
        with pytest.raises(SendError):
            check_send_response(bad)
