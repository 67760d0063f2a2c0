"""The "whoever edited a version may not approve its publish" rule (an environment's
``approval.allow_editor_approval: false``): who edited what a publish releases, whom the policy
excludes, and that every answer path (a token, a chat user, a single-use code, the screen
before a run is woken) refuses them with the rule named, records the refusal and leaves the
request pending for another approver (SQLite ledger, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.auth import approvals as gate_core
from quayside.auth import service
from quayside.auth.approval_codes import decide_with_code, issue_code
from quayside.auth.roles import PermissionDenied
from quayside.config import items
from quayside.config.address import ItemAddress
from quayside.config.publish_editors import editors_of
from quayside.config.publish_plan import PublishFile
from quayside.config.records import content_hash
from quayside.config.sql_store import SqlConfigStore
from quayside.inventory.models import ApprovalPolicy
from quayside.ledger import approvals
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ApprovalStatus
from quayside.tasks.release_approve import EDITOR_RULE, excluded_editors

HOSTS = ItemAddress("DNS", "release", "dnsmasq", "hosts")
CONF = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq.conf")
STRICT = ApprovalPolicy(required=1, role="MASTER", allow_editor_approval=False)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


def publish_file(address: ItemAddress, version: int) -> PublishFile:
    return PublishFile(address.filename, address, version, "x", content_hash("x"), "x")


def test_the_editors_are_the_authors_since_the_published_version(engine: Engine) -> None:
    store = SqlConfigStore(engine)
    items.save(store, HOSTS, "1\n", author="ann", base_version=0)
    items.mark_published(store, HOSTS, 1, actor="ci")
    items.save(store, HOSTS, "2\n", author="bob", base_version=1)
    items.save(store, HOSTS, "3\n", author="cy", base_version=2)
    items.save(store, CONF, "port=53\n", author="bob", base_version=0)
    got = editors_of(store, [publish_file(HOSTS, 3), publish_file(CONF, 1)])
    assert got == {"bob": "hosts up to v3, dnsmasq.conf up to v1", "cy": "hosts up to v3"}
    # ann's v1 is published: she edited nothing this publish releases
    assert editors_of(store, [publish_file(HOSTS, 2)]) == {"bob": "hosts up to v2"}
    # publishing the published version again (a rollback to it) has no new editors
    assert editors_of(store, [publish_file(HOSTS, 1)]) == {}


def test_the_policy_excludes_the_editors_only_when_it_says_so() -> None:
    editors = {"bob": "hosts up to v3"}
    assert excluded_editors(ApprovalPolicy(required=1), editors) == {}
    assert excluded_editors(STRICT, {}) == {}
    assert excluded_editors(STRICT, editors) == {
        "bob": f"bob edited hosts up to v3, and {EDITOR_RULE}"
    }


def test_every_answer_path_refuses_an_editor_and_counts_another_approver(engine: Engine) -> None:
    tokens = {}
    for name in ("bob", "cy", "lead"):
        service.create_user(engine, name)
        service.grant_role(engine, name, "MASTER", space="ops")
        tokens[name] = service.create_token(engine, name)
    request = gate_core.open_request(
        engine,
        app="DNS",
        env="release",
        space="ops",
        summary="hosts v3",
        requested_by="ann",
        policy=STRICT,
        flow_run_id="run-1",
        excluded_approvers=excluded_editors(STRICT, {"bob": "hosts up to v3", "cy": "hosts"}),
    )
    rid = request.id

    by_token = gate_core.decide(engine, rid, token_text=tokens["bob"], decision="approve")
    assert not by_token.accepted and by_token.status is ApprovalStatus.pending
    assert by_token.reason is not None
    assert "bob may not approve this release: bob edited hosts up to v3" in by_token.reason
    assert EDITOR_RULE in by_token.reason and "project 'DNS' of space 'ops'" in by_token.reason
    by_chat = gate_core.decide_as(engine, rid, user="cy", decision="approve")
    assert not by_chat.accepted and EDITOR_RULE in (by_chat.reason or "")
    with pytest.raises(PermissionDenied, match="allow_editor_approval: false"):
        gate_core.screen_answerer(engine, rid, user="bob", decision="approve")
    with pytest.raises(PermissionDenied, match="bob may not approve"):
        issue_code(engine, rid, user="bob")  # no code for the Prefect UI's form either

    # a code issued before (to someone allowed) is not a way around it: the rule is checked
    # when the code is used, on the request's own set
    code = issue_code(engine, rid, user="lead")
    assert decide_with_code(engine, rid, code_text=code.code, decision="approve").accepted

    current = approvals.get_request(engine, rid)
    assert current.status is ApprovalStatus.approved
    assert gate_core.valid_approvers(current) == ("lead",)
    refused = [(d.user, d.valid) for d in current.decisions if not d.valid]
    assert refused == [("bob", False), ("cy", False), ("bob", False)]
    assert all(EDITOR_RULE in (d.reason or "") for d in current.decisions if not d.valid)
