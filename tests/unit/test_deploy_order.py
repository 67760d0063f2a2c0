"""The order of what one host's deploy sends (quayside.deploy.host_deploy.deploy_host) and of a
switch back (quayside.deploy.switch_back.switch_back), recorded by the testbed's recording
executor: no host, no server. Each recorded command is named by what it is (the facts script,
the stage script with or without its switch, a hook, the health probe, the switch back), and
the whole sequence is compared, so an extra, a missing or a reordered command fails."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from quayside.commands import release as rc
from quayside.deploy import scripts
from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.release_spec import ReleaseSpec
from quayside.deploy.switch_back import switch_back
from quayside.errors import HostError
from quayside.executors.base import CommandResult
from quayside.inventory.models import HealthCheck, Hooks
from quayside.manifest import build_manifest
from testbed.recording_executor import Call, Journal, RecordingExecutor

HOST = "web-1"
ROOT = "/srv/app"
OLD = "20240501T120000Z-aaaaaaaaaaaa"
NEW = "20240502T120000Z-bbbbbbbbbbbb"
PRE = [["pre-switch-1", "--check"], "pre-switch-2 && migrate"]
POST = [["post-switch-1"], "reload php-fpm"]
PROBE = ["health-probe", "--local"]
HOOK_LABELS = {
    ("pre-switch-1", "--check"): "pre-switch hook 1",
    ("sh", "-c", "pre-switch-2 && migrate"): "pre-switch hook 2",
    ("post-switch-1",): "post-switch hook 1",
    ("sh", "-c", "reload php-fpm"): "post-switch hook 2",
    tuple(PROBE): "health",
}


def label(call: Call) -> str:
    """What a recorded command is, by its program text (constants of quayside) and argv."""
    assert call.kind == "run" and call.host == HOST, call
    argv = call.argv
    if argv[:2] == ("sh", "-c") and argv[3:4] == (rc.SCRIPT_NAME,):
        script = argv[2]
        if script == rc.FACTS_SCRIPT:
            return "facts"
        if script == scripts.STAGE_SCRIPT:
            env = call.env or {}
            if env["STAGE_MODE"] == "keep":  # the switch after the pre-switch hooks
                assert env["STAGE_SWITCH"] == "1" and env["STAGE_EXTRACT"] == "none"
                return "switch"
            return "stage+switch" if env["STAGE_SWITCH"] == "1" else "stage"
        if script == rc.SWITCH_SCRIPT:
            assert argv[4:] == (
                rc.release_dir(ROOT, OLD),
                f"releases/{OLD}",
                rc.temp_link(ROOT, OLD),
                rc.current_link(ROOT),
            )
            return "switch back"
    if argv == tuple(scripts.remove_release(ROOT, NEW)):
        return "remove new release"
    return HOOK_LABELS.get(argv, f"unexpected {argv!r}")


def old_facts(tmp_path: Path) -> str:
    """What the host says before the deploy: it serves OLD (one file of other content)."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "index.html").write_text("v1\n")
    manifest = build_manifest(old).to_json()
    return f"current:releases/{OLD}\nrelease:{OLD}\nmanifest:{manifest}\n"


def new_spec(tmp_path: Path, *, pre_switch: bool = True, **changes: object) -> ReleaseSpec:
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "index.html").write_text("v2\n")
    spec = ReleaseSpec(
        app="web",
        env="prod",
        release_id=NEW,
        commit_sha="b" * 40,
        ref="v2",
        payload_dir=payload,
        manifest=build_manifest(payload),
        deploy_root=ROOT,
        hooks=Hooks(pre_switch=PRE if pre_switch else [], post_switch=POST),
        health=HealthCheck(command=PROBE, retries=0, interval_s=0),
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def host(
    facts: str, *, failing: Callable[[tuple[str, ...]], CommandResult | None] = lambda a: None
) -> tuple[RecordingExecutor, Journal]:
    """A recording host that answers the facts script with ``facts``, every stage script with
    a switch from OLD, and everything else with success unless ``failing`` says otherwise."""
    journal = Journal()

    def answer(argv: tuple[str, ...]) -> str | CommandResult | BaseException:
        failed = failing(argv)
        if failed is not None:
            return failed
        if argv[2:3] == (rc.FACTS_SCRIPT,):
            return facts
        if argv[2:3] == (scripts.STAGE_SCRIPT,):
            return f"switched:releases/{OLD}\n"
        return ""

    return RecordingExecutor(HOST, journal, answer=answer), journal


def unhealthy(argv: tuple[str, ...]) -> CommandResult | None:
    if argv == tuple(PROBE):
        return CommandResult(HOST, argv, 1, "", "HTTP 502 from php-fpm\n", 0.01)
    return None


def test_a_deploy_sends_facts_stage_pre_switch_hooks_switch_post_switch_hooks_health(
    tmp_path: Path,
) -> None:
    executor, journal = host(old_facts(tmp_path))
    report = deploy_host(executor, HOST, new_spec(tmp_path))
    assert (report.status, report.step, report.previous) == ("succeeded", "done", OLD)
    assert [label(c) for c in journal.calls] == [
        "facts",
        "stage",
        "pre-switch hook 1",
        "pre-switch hook 2",
        "switch",
        "post-switch hook 1",
        "post-switch hook 2",
        "health",
    ]
    assert report.round_trips == len(journal.calls)
    stage, switch = journal.calls[1], journal.calls[4]
    assert stage.stdin is not None and stage.stdin.endswith(b"\0")  # a tar, no go after it
    assert switch.stdin == scripts.commit_line(NEW)  # the switch carries only the go
    # the hooks see the new release, the one it replaces, and where it is
    hook_env = journal.calls[2].env or {}
    assert hook_env["QUAYSIDE_RELEASE"] == NEW
    assert hook_env["QUAYSIDE_PREVIOUS_RELEASE"] == OLD
    assert journal.calls[5].env == hook_env and journal.calls[7].env == hook_env


def test_without_pre_switch_hooks_the_stage_switches_itself(tmp_path: Path) -> None:
    executor, journal = host(old_facts(tmp_path))
    report = deploy_host(executor, HOST, new_spec(tmp_path, pre_switch=False))
    assert report.status == "succeeded"
    assert [label(c) for c in journal.calls] == [
        "facts",
        "stage+switch",
        "post-switch hook 1",
        "post-switch hook 2",
        "health",
    ]
    stage = journal.calls[1]
    assert stage.stdin is not None and stage.stdin.endswith(scripts.commit_line(NEW))


def test_a_failed_health_check_switches_back_and_reruns_only_the_post_switch_hooks(
    tmp_path: Path,
) -> None:
    executor, journal = host(old_facts(tmp_path), failing=unhealthy)
    report = deploy_host(executor, HOST, new_spec(tmp_path))
    assert (report.status, report.step, report.switched) == ("failed", "health", False)
    assert "HTTP 502 from php-fpm" in report.message
    assert report.message.endswith(f"; switched back to {OLD}")
    assert [label(c) for c in journal.calls] == [
        "facts",
        "stage",
        "pre-switch hook 1",
        "pre-switch hook 2",
        "switch",
        "post-switch hook 1",
        "post-switch hook 2",
        "health",
        "switch back",
        "post-switch hook 1",
        "post-switch hook 2",
    ]
    # re-run in the release served again: it is theirs to see as QUAYSIDE_RELEASE
    for rerun in journal.calls[9:]:
        assert (rerun.env or {})["QUAYSIDE_RELEASE"] == OLD


def test_a_failed_pre_switch_hook_removes_the_new_release_and_switches_nothing(
    tmp_path: Path,
) -> None:
    def hook_fails(argv: tuple[str, ...]) -> CommandResult | None:
        if argv == ("sh", "-c", "pre-switch-2 && migrate"):
            return CommandResult(HOST, argv, 2, "", "migration 42 failed\n", 0.01)
        return None

    executor, journal = host(old_facts(tmp_path), failing=hook_fails)
    report = deploy_host(executor, HOST, new_spec(tmp_path))
    assert (report.status, report.step, report.switched) == ("failed", "pre_switch", False)
    assert "pre-switch hook 2" in report.message and "migration 42 failed" in report.message
    assert [label(c) for c in journal.calls] == [
        "facts",
        "stage",
        "pre-switch hook 1",
        "pre-switch hook 2",
        "remove new release",
    ]


def test_a_host_as_the_last_deploy_left_it_is_staged_without_reading_facts(
    tmp_path: Path,
) -> None:
    facts = old_facts(tmp_path)
    known = build_manifest(tmp_path / "old")
    sha = hashlib.sha256(known.to_json().encode()).hexdigest()
    left = f"current:releases/{OLD}\nrelease:{OLD}\nmanifest-same:{sha}"  # its facts_after
    spec = new_spec(tmp_path, pre_switch=False, known_manifest=known, expected_facts={HOST: left})
    executor, journal = host(facts)
    report = deploy_host(executor, HOST, spec)
    assert report.status == "succeeded"
    assert [label(c) for c in journal.calls] == [
        "stage+switch",
        "post-switch hook 1",
        "post-switch hook 2",
        "health",
    ]
    assert (journal.calls[0].env or {})["STAGE_GUARD"] == sha


def test_switch_back_switches_then_reruns_the_hooks_even_past_a_failing_one() -> None:
    def first_hook_fails(argv: tuple[str, ...]) -> CommandResult | None:
        if argv == ("post-switch-1",):
            return CommandResult(HOST, argv, 1, "", "reload failed\n", 0.01)
        return None

    executor, journal = host("", failing=first_hook_fails)
    switch_back(executor, ROOT, OLD, hooks=POST, env={"QUAYSIDE_APP": "web"})
    assert [label(c) for c in journal.calls] == [
        "switch back",
        "post-switch hook 1",
        "post-switch hook 2",
    ]
    assert journal.calls[2].env == {"QUAYSIDE_APP": "web", "QUAYSIDE_RELEASE": OLD}


def test_switch_back_without_a_previous_release_removes_current_and_runs_no_hook() -> None:
    executor, journal = host("")
    switch_back(executor, ROOT, None, hooks=POST, env={})
    assert [c.argv for c in journal.calls] == [tuple(scripts.unswitch(ROOT))]


def test_a_switch_back_that_fails_runs_no_hook() -> None:
    def switch_fails(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[2:3] == (rc.SWITCH_SCRIPT,):
            return CommandResult(HOST, argv, 3, "", "release does not exist\n", 0.01)
        return None

    executor, journal = host("", failing=switch_fails)
    with pytest.raises(HostError, match="release does not exist"):
        switch_back(executor, ROOT, OLD, hooks=POST, env={})
    assert [label(c) for c in journal.calls] == ["switch back"]
