"""The "whoever edited a version may not approve its publish" rule (an environment's
``approval.allow_editor_approval: false``): who edited what a publish releases, whom the policy
excludes, and that every answer path (a token, a chat user, a single-use code, the screen
before a run is woken) refuses them with the rule named, records the refusal and leaves the
request pending for another approver (SQLite ledger, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from quayside.auth import approvals as gate_core
from quayside.auth import service
from quayside.auth.approval_codes import decide_with_code, issue_code
from quayside.auth.roles import PermissionDenied
from quayside.config import items, variables
from quayside.config.address import ItemAddress
from quayside.config.publish_editors import editors_of
from quayside.config.publish_files import rendered_files
from quayside.config.publish_plan import PublishFile
from quayside.config.records import content_hash
from quayside.config.secret_box import SecretBox
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


def test_the_editors_include_whoever_changed_a_variable_the_template_reads(
    engine: Engine, tmp_path: Path
) -> None:
    store, box = SqlConfigStore(engine), SecretBox.from_home(tmp_path / "home")
    env = HOSTS.env
    variables.set_value(store, box, env, "ns", "10.0.0.1", author="ann")
    variables.set_value(store, box, env, "other", "x", author="dan")  # the template never reads it
    items.save(store, HOSTS, "{{ ns }} ns1\n", author="ann", base_version=0, template=True)
    items.mark_published(store, HOSTS, 1, actor="ci", variables={"ns": 1})
    variables.set_value(store, box, env, "ns", "10.0.0.2", author="bob")
    variables.set_value(store, box, env, "ns", "10.0.0.3", author="cy")
    variables.set_value(store, box, env, "other", "y", author="dan")
    files, _ = rendered_files(store, [(HOSTS, None)], box, None)
    assert files[0].variables == {"ns": 3}
    assert editors_of(store, files) == {"bob": "$ns up to v3", "cy": "$ns up to v3"}
    # a file edit and a variable edit by one person are both named
    items.save(store, HOSTS, "{{ ns }} ns2\n", author="bob", base_version=1, template=True)
    files, _ = rendered_files(store, [(HOSTS, None)], box, None)
    assert editors_of(store, files) == {"bob": "hosts up to v2, $ns up to v3", "cy": "$ns up to v3"}
    # once published with these versions, nobody edited what is published
    items.mark_published(store, HOSTS, 2, actor="ci", variables=files[0].variables)
    assert editors_of(store, files) == {}
    # a variable the published rendering did not read counts from its first version
    items.save(store, HOSTS, "{{ ns }} {{ other }}\n", author="ann", base_version=2, template=True)
    files, _ = rendered_files(store, [(HOSTS, None)], box, None)
    assert editors_of(store, files) == {"ann": "hosts up to v3", "dan": "$other up to v2"}


def test_a_marker_without_variable_versions_counts_from_those_of_its_time(
    engine: Engine, tmp_path: Path
) -> None:
    store, box = SqlConfigStore(engine), SecretBox.from_home(tmp_path / "home")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    variables.set_value(store, box, HOSTS.env, "ns", "10.0.0.1", author="ann", at=t0)
    items.save(store, HOSTS, "{{ ns }}\n", author="ann", base_version=0, template=True, at=t0)
    store.set_published(HOSTS, 1, by="ci", at=t0 + timedelta(hours=1))  # records no variables
    variables.set_value(store, box, HOSTS.env, "ns", "10.0.0.2", author="bob")
    files, _ = rendered_files(store, [(HOSTS, None)], box, None)
    assert editors_of(store, files) == {"bob": "$ns up to v2"}


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
