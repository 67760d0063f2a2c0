"""The task submission API model: compatibility with the older platform's JSON (seed 000)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from quayside.errors import InputError, NotFoundError
from quayside.triggers.tasks_api import (
    TaskSubmission,
    format_validation_error,
    hosts_list,
    parse_exec_time,
    parse_submission,
    to_request,
    to_utc,
)
from testbed import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "tasks"
ALIASES = {"1": "git-deploy/web"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert data["_doc"]["references"], "fixture must carry its documentation reference"
    return data


def test_seed_example_3_verbatim() -> None:
    sub = parse_submission(load("seed_example3.json")["body"])
    assert sub.temp_id == "1"
    assert sub.hosts == {1: "172.16.0.101"}
    assert sub.associated_user == {"group-1": ["杨红飞"]}
    assert list(sub.args) == ["VERSION"]
    assert sub.exec_time == datetime(2019, 5, 24, 9, 9, 50)
    req = to_request(sub, ALIASES, "Asia/Shanghai")
    assert req.deployment == "git-deploy/web"
    assert req.hosts == ["172.16.0.101"]
    assert req.require_approval is False
    assert req.scheduled_at == datetime(2019, 5, 24, 1, 9, 50, tzinfo=UTC)
    assert req.submitter == "yanghongfei"
    assert req.notify == {"group-1": ["杨红飞"]}
    assert req.details == "这里是备注"


def test_seed_script_body_with_executor() -> None:
    sub = parse_submission(load("seed_script.json")["body"])
    req = to_request(sub, ALIASES, "Asia/Shanghai", user="githook-token-user")
    assert req.parameters == {
        "TAG": "codo-beta0.3",
        "GIT_URL": "git@gitlab.xxxxxxx.com:xxxxx/xxxxx.git",
        "APP_NAME": "Web",
    }
    assert req.require_approval is True
    assert req.submitter == "githook-token-user"  # the token's user wins over the body


def test_submitter_is_informational_so_cleaned_to_name_characters() -> None:
    body = load("seed_example3.json")["body"]
    forged = "eve\n| approvals | 1 of 1 |\n![x](http://evil/t.png)"
    assert parse_submission({**body, "submitter": forged}).submitter == (
        "eve.approvals.1.of.1.xhttpevilt.png"
    )
    assert parse_submission({**body, "submitter": "杨红飞"}).submitter == "杨红飞"
    assert parse_submission({**body, "submitter": "| |"}).submitter is None


def test_json_objects_and_iso_time() -> None:
    sub = parse_submission(load("json_objects.json")["body"])
    req = to_request(sub, ALIASES)
    assert req.deployment == "git-deploy/web"
    assert req.hosts == ["172.16.0.101", "172.16.0.102", "172.16.0.103"]
    assert req.scheduled_at == datetime(2024, 3, 1, 2, 0, tzinfo=UTC)


BASE: dict[str, Any] = {"task_name": "t", "temp_id": "web-deploy", "args": {"TAG": "v1"}}


def errors_of(body: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        TaskSubmission.model_validate(body)
    return format_validation_error(exc.value)


def test_unknown_field_is_named() -> None:
    lines = errors_of({**BASE, "hostz": "{}"})
    assert len(lines) == 1
    assert lines[0].startswith("hostz: unknown field; accepted fields are: task_name, temp_id")


def test_missing_fields() -> None:
    lines = errors_of({"args": {}})
    assert "task_name: required field is missing" in lines
    assert "temp_id: required field is missing" in lines


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("args", "__import__('os').system('id')", "args: "),
        ("args", "{'a': os.name}", "Attribute expressions are not accepted"),
        ("args", "{1: 'x'}", "parameter names must be identifiers"),
        ("args", "{'bad key': 'x'}", "parameter names must be identifiers"),
        ("hosts", "{1: '172.16.0.1; rm -rf /'}", "hosts: group 1: hosts are names or IP"),
        ("hosts", "{1: ['-oProxyCommand=x']}", "hosts: group 1"),
        ("associated_user", "{'g': {'nested': 1}}", "associated_user: "),
        ("schedule", "later", "schedule: "),
        ("exec_time", "tomorrow", "exec_time: expected local time like '2019-5-24 09:09:50'"),
        ("exec_time", "2019-13-40 09:09:50", "exec_time: "),
        ("exec_time", 1558660190, "exec_time: must be a string"),
        ("temp_id", "../../etc", "temp_id: must be a deployment name"),
        ("temp_id", -1, "temp_id: a numeric alias cannot be negative"),
        ("temp_id", True, "temp_id: "),
        ("task_name", "", "task_name: "),
        ("idempotency_key", "short", "idempotency_key: 8-200 characters"),
    ],
)
def test_field_errors(field: str, value: object, fragment: str) -> None:
    lines = errors_of({**BASE, field: value})
    assert any(fragment in line for line in lines), lines
    assert all("Value error" not in line for line in lines)


def test_parse_submission_wraps_errors() -> None:
    with pytest.raises(InputError) as exc:
        parse_submission({**BASE, "extra": 1, "schedule": "x"})
    assert "extra: unknown field" in str(exc.value)
    assert "schedule: " in str(exc.value)
    with pytest.raises(InputError):
        parse_submission(["not", "an", "object"])


def test_validation_errors_do_not_echo_values() -> None:
    lines = errors_of({**BASE, "args": "{'a': __import__('os')}"})
    assert not any("__import__" in line for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-5-24 09:09:50", datetime(2019, 5, 24, 9, 9, 50)),
        ("2019-05-24 9:9:5", datetime(2019, 5, 24, 9, 9, 5)),
        ("2019-5-24 09:09", datetime(2019, 5, 24, 9, 9)),
        ("2019/5/24 09:09:50", datetime(2019, 5, 24, 9, 9, 50)),
        ("2019-05-24T09:09:50", datetime(2019, 5, 24, 9, 9, 50)),
        ("2019-05-24T09:09:50+08:00", datetime(2019, 5, 24, 1, 9, 50, tzinfo=UTC)),
        ("2019-05-24T01:09:50Z", datetime(2019, 5, 24, 1, 9, 50, tzinfo=UTC)),
    ],
)
def test_exec_time_forms(text: str, expected: datetime) -> None:
    parsed = parse_exec_time(text)
    assert parsed == expected
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)


def test_timezone_is_configurable() -> None:
    sub = TaskSubmission.model_validate({**BASE, "exec_time": "2024-01-15 09:00:00"})
    assert to_request(sub, {}, "UTC").scheduled_at == datetime(2024, 1, 15, 9, tzinfo=UTC)
    assert to_request(sub, {}, "Asia/Shanghai").scheduled_at == datetime(2024, 1, 15, 1, tzinfo=UTC)
    assert to_request(sub, {}, "Europe/Berlin").scheduled_at == datetime(2024, 1, 15, 8, tzinfo=UTC)
    with pytest.raises(InputError, match="unknown timezone"):
        to_request(sub, {}, "Mars/Olympus")


def test_aware_exec_time_ignores_gateway_zone() -> None:
    sub = TaskSubmission.model_validate({**BASE, "exec_time": "2024-01-15T09:00:00+08:00"})
    assert to_request(sub, {}, "UTC").scheduled_at == datetime(2024, 1, 15, 1, tzinfo=UTC)


def test_nonexistent_local_time_rejected() -> None:
    with pytest.raises(InputError, match="does not exist"):
        to_utc(datetime(2024, 3, 31, 2, 30), "Europe/Berlin")  # skipped by DST


def test_numeric_temp_id_must_be_a_configured_template_or_alias() -> None:
    sub = TaskSubmission.model_validate({**BASE, "temp_id": 7})
    assert sub.temp_id == "7"
    with pytest.raises(NotFoundError, match="temp_id: no task template '7' is configured"):
        to_request(sub, ALIASES)
    assert to_request(sub, {"7": "image-build/api"}).deployment == "image-build/api"


def test_name_temp_id_passes_through() -> None:
    sub = TaskSubmission.model_validate({**BASE, "temp_id": "config-publish/dnsmasq"})
    assert to_request(sub, {}).deployment == "config-publish/dnsmasq"


def test_hosts_list_orders_groups_and_dedupes() -> None:
    assert hosts_list({2: "b", 1: ["a", "b"], "x": "c", 10: "d"}) == ["a", "b", "d", "c"]


def test_idempotency_key_is_stable_and_content_based() -> None:
    body = {**BASE, "hosts": "{1: '10.0.0.1'}", "details": "one"}
    a = to_request(TaskSubmission.model_validate(body), {})
    b = to_request(TaskSubmission.model_validate({**body, "details": "two", "task_name": "x"}), {})
    assert a.idempotency_key == b.idempotency_key  # free text does not change identity
    assert a.idempotency_key.startswith("task:") and len(a.idempotency_key) == 5 + 64
    c = to_request(TaskSubmission.model_validate({**body, "args": {"TAG": "v2"}}), {})
    d = to_request(TaskSubmission.model_validate({**body, "schedule": "new"}), {})
    e = to_request(TaskSubmission.model_validate(body), {}, user="someone")
    assert len({a.idempotency_key, c.idempotency_key, d.idempotency_key, e.idempotency_key}) == 4


def test_idempotency_key_dict_order_irrelevant() -> None:
    one = TaskSubmission.model_validate({**BASE, "args": "{'A': 1, 'B': 2}"})
    two = TaskSubmission.model_validate({**BASE, "args": '{"B": 2, "A": 1}'})
    assert to_request(one, {}).idempotency_key == to_request(two, {}).idempotency_key


def test_idempotency_window_for_unscheduled_requests() -> None:
    sub = TaskSubmission.model_validate(BASE)
    t0 = datetime(2024, 1, 1, 12, 0, 1, tzinfo=UTC)
    k1 = to_request(sub, {}, now=t0).idempotency_key
    k2 = to_request(sub, {}, now=t0 + timedelta(minutes=5)).idempotency_key
    k3 = to_request(sub, {}, now=t0 + timedelta(days=1)).idempotency_key
    assert k1 == k2 != k3


def test_client_idempotency_key_wins() -> None:
    sub = TaskSubmission.model_validate({**BASE, "idempotency_key": "client-key-0001"})
    assert to_request(sub, {}).idempotency_key == "client-key-0001"
    assert to_request(sub, {}, idempotency_key="header-key-0001").idempotency_key == (
        "header-key-0001"
    )
    with pytest.raises(InputError, match="Idempotency-Key"):
        to_request(sub, {}, idempotency_key="bad key with spaces")
