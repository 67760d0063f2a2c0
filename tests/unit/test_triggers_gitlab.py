"""GitLab webhooks: parsing per the documented payloads, token check, tag rules, decisions."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from quayside.errors import ConfigError, InputError
from quayside.triggers.gitlab import (
    PipelineEvent,
    PushEvent,
    TagPushEvent,
    TagRule,
    compile_rules,
    decide,
    dedupe_key,
    match_tag,
    parse_event,
    verify_token,
)
from testbed import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "gitlab"
RULES = compile_rules(
    [
        {"pattern": r"^qa-", "environment": "test", "approval": False},
        {"pattern": r"^release-", "environment": "prod", "approval": True},
    ]
)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert data["_doc"]["references"][0]["url"].startswith("https://docs.gitlab.com/")
    return data


def event_of(name: str) -> TagPushEvent | PushEvent | PipelineEvent | None:
    data = load(name)
    return parse_event(data["body"], data["headers"]["X-Gitlab-Event"])


def test_tag_push_deploys_with_approval() -> None:
    event = event_of("tag_push.json")
    assert isinstance(event, TagPushEvent)
    assert event.tag == "release-v1.0.0"
    assert event.project.git_ssh_url == "git@example.com:jsmith/example.git"
    decision = decide(event, RULES, app="web")
    assert decision.deploy
    assert decision.app == "web"
    assert decision.environment == "prod"
    assert decision.ref == "release-v1.0.0"
    assert decision.commit == "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"
    assert decision.requires_approval is True
    assert decision.repo == "jsmith/example"
    assert decision.user == "jsmith"
    assert decision.dedupe_key == dedupe_key(
        "web", "jsmith/example", "release-v1.0.0", decision.commit
    )


def test_qa_tag_runs_without_approval() -> None:
    body = copy.deepcopy(load("tag_push.json")["body"])
    body["ref"] = "refs/tags/qa-yanghongfei-1"
    decision = decide(parse_event(body, "Tag Push Hook"), RULES, app="web")
    assert decision.deploy and decision.environment == "test" and not decision.requires_approval


def test_annotated_tag_uses_checkout_sha() -> None:
    body = copy.deepcopy(load("tag_push.json")["body"])
    body["after"] = "1" * 40  # the tag object
    decision = decide(parse_event(body, "Tag Push Hook"), RULES, app="web")
    assert decision.commit == "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"


def test_tag_without_username_uses_name() -> None:
    body = copy.deepcopy(load("tag_push.json")["body"])
    del body["user_username"]  # the documented tag example has only user_name
    decision = decide(parse_event(body, "Tag Push Hook"), RULES, app="web")
    assert decision.user == "John.Smith"  # a display name, cut down to name characters


FORGED_ROWS = "eve\n| approvals | 1 of 1 — pre-approved by boss |\n| self-approval | allowed |"


@pytest.mark.parametrize(
    "username", [FORGED_ROWS, "a|b", "![x](http://evil/t.png)", "x" * 101, "", "a b"]
)
def test_username_outside_name_characters_is_refused(username: str) -> None:
    """user_username becomes the release's requester (compared with approvers): refused."""
    body = copy.deepcopy(load("tag_push.json")["body"])
    body["user_username"] = username
    with pytest.raises(InputError, match="user_username: a user name has letters") as caught:
        parse_event(body, "Tag Push Hook")
    assert "approvals" not in str(caught.value) and "evil" not in str(caught.value)
    pipeline = copy.deepcopy(load("pipeline_tag_success.json")["body"])
    pipeline["user"]["username"] = username
    with pytest.raises(InputError, match="user.username: a user name has letters"):
        parse_event(pipeline, "Pipeline Hook")


@pytest.mark.parametrize("username", ["jsmith", "zhang.san@corp", "张三", "o_b"])
def test_name_characters_of_any_script_are_accepted(username: str) -> None:
    body = copy.deepcopy(load("tag_push.json")["body"])
    body["user_username"] = username
    assert decide(parse_event(body, "Tag Push Hook"), RULES, app="web").user == username


def test_display_name_is_cleaned_not_refused() -> None:
    body = copy.deepcopy(load("tag_push.json")["body"])
    del body["user_username"]
    body["user_name"] = FORGED_ROWS
    decision = decide(parse_event(body, "Tag Push Hook"), RULES, app="web")
    assert decision.user == "eve.approvals.1.of.1.pre-approved.by.boss.self-approval.allowed"
    body["user_name"] = "| |"
    assert decide(parse_event(body, "Tag Push Hook"), RULES, app="web").user is None


def test_tag_deletion_is_ignored() -> None:
    decision = decide(event_of("tag_push_deleted.json"), RULES, app="web")
    assert not decision.deploy
    assert "deleted" in decision.reason


def test_unmatched_tag_is_ignored() -> None:
    body = copy.deepcopy(load("tag_push.json")["body"])
    body["ref"] = "refs/tags/v2.0"
    decision = decide(parse_event(body, "Tag Push Hook"), RULES, app="web")
    assert decision.action == "ignore"
    assert "matches no tag rule" in decision.reason


def test_odd_tag_names_are_ignored() -> None:
    body = copy.deepcopy(load("tag_push.json")["body"])
    for ref in ("refs/tags/release-$(id)", "refs/tags/release-a..b", "refs/tags/-release"):
        body["ref"] = ref
        assert not decide(parse_event(body, "Tag Push Hook"), RULES, app="web").deploy


def test_branch_push_is_ignored() -> None:
    event = event_of("push.json")
    assert isinstance(event, PushEvent)
    decision = decide(event, RULES, app="web")
    assert not decision.deploy and "not a tag push" in decision.reason


def test_successful_tag_pipeline_deploys_with_same_key() -> None:
    event = event_of("pipeline_tag_success.json")
    assert isinstance(event, PipelineEvent)
    decision = decide(event, RULES, app="web")
    assert decision.deploy and decision.environment == "prod" and decision.user == "root"
    tag_decision = decide(event_of("tag_push.json"), RULES, app="web")
    assert decision.dedupe_key == tag_decision.dedupe_key


@pytest.mark.parametrize(
    ("tag", "status"), [(True, "running"), (True, "failed"), (False, "success")]
)
def test_other_pipelines_are_ignored(tag: bool, status: str) -> None:
    body = copy.deepcopy(load("pipeline_tag_success.json")["body"])
    body["object_attributes"].update(tag=tag, status=status)
    assert not decide(parse_event(body, "Pipeline Hook"), RULES, app="web").deploy


def test_unhandled_event_type() -> None:
    assert parse_event({"object_kind": "issue"}, "Issue Hook") is None
    assert decide(None, RULES, app="web").action == "ignore"


@pytest.mark.parametrize(
    ("body", "header", "fragment"),
    [
        ({"object_kind": "tag_push"}, None, "missing X-Gitlab-Event"),
        ({"object_kind": "push"}, "Tag Push Hook", "object_kind is not 'tag_push'"),
        ({"object_kind": "tag_push", "ref": "refs/tags/x"}, "Tag Push Hook", "project"),
        (
            {"object_kind": "pipeline", "object_attributes": {"id": "x"}, "project": {}},
            "Pipeline Hook",
            "Pipeline Hook payload",
        ),
    ],
)
def test_malformed_payloads(body: dict[str, Any], header: str | None, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        parse_event(body, header)


def test_verify_token() -> None:
    headers = load("tag_push.json")["headers"]
    assert verify_token("test-hook-secret", headers["X-Gitlab-Token"])
    assert not verify_token("test-hook-secret", "test-hook-secreT")
    assert not verify_token("test-hook-secret", "")
    assert not verify_token("test-hook-secret", None)
    assert not verify_token("", "")
    assert not verify_token("", None)
    assert not verify_token("秘密", "secret")
    assert verify_token("秘密", "秘密")


def test_match_tag_first_rule_wins() -> None:
    rules = compile_rules(
        [
            {"pattern": "^release-hotfix", "environment": "staging"},
            {"pattern": "^release-", "environment": "prod", "approval": True},
        ]
    )
    assert match_tag(rules, "release-hotfix-1") is rules[0]
    assert match_tag(rules, "release-1") is rules[1]
    assert match_tag(rules, "v1") is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([{"pattern": "(", "environment": "prod"}], r"tag_rules\[0\]\.pattern: not a valid"),
        ([{"pattern": "x" * 300, "environment": "prod"}], "longer than"),
        ([{"pattern": "^a", "environment": "bad env"}], r"tag_rules\[0\]\.environment"),
        ([{"pattern": "^a"}], "required"),
        ([{"pattern": "^a", "environment": "p", "approve": True}], "unknown key"),
        ([{"pattern": "^a", "environment": "p", "approval": "yes"}], "approval"),
        (["^a"], "expected a mapping"),
    ],
)
def test_rule_config_errors(raw: list[Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        compile_rules(raw)


def test_tag_rule_compile_where() -> None:
    with pytest.raises(ConfigError, match=r"apps\.web\.tag_rules\[3\]\.pattern"):
        TagRule.compile("[", "prod", True, where="apps.web.tag_rules[3]")


def test_dedupe_key() -> None:
    key = dedupe_key("web", "Group/App", "v1", "ABC")
    assert key == dedupe_key("web", "group/app", "v1", "abc")
    assert key != dedupe_key("web", "group/app", "v2", "abc")
    assert key != dedupe_key("web", "group/app2", "v1", "abc")
    assert key != dedupe_key("api", "group/app", "v1", "abc")  # two apps from one repo
    assert key.startswith("git-tag:") and len(key) == 8 + 64
