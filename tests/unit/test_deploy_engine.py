"""The deploy core without a server: failure policy, script argv, health retries, and the
per-host engine against a local deploy root through the LocalExecutor (tar and rsync paths)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from quayside.deploy import scripts
from quayside.deploy.errors import HealthCheckFailed
from quayside.deploy.health import wait_healthy
from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.host_plan import prepare_plans
from quayside.deploy.host_rollback import rollback_host
from quayside.deploy.payload_tar import build_tar_file, manifest_patch
from quayside.deploy.policy import exceeded, failure_limit
from quayside.deploy.release_spec import ReleaseSpec, RollbackSpec
from quayside.deploy.scripts import StageRequest
from quayside.deploy.summary import approval_markdown
from quayside.deploy.switch_back import switch_back
from quayside.errors import InputError
from quayside.executors.local import LocalExecutor
from quayside.inventory.models import HealthCheck, Hooks
from quayside.manifest import MANIFEST_FILENAME, Manifest, build_manifest
from quayside.release.host_report import HostReport
from quayside.source.mirror import Commit


def test_failure_limit() -> None:
    assert failure_limit(0, 10) == 0
    assert failure_limit("25%", 10) == 2
    assert failure_limit("10%", 5) == 0
    assert failure_limit("3", 10) == 3
    assert exceeded(1, 0) and not exceeded(2, 2)
    with pytest.raises(InputError):
        failure_limit("many", 3)


def test_stage_script_is_constant_and_values_are_arguments() -> None:
    evil = "x; rm -rf / $(id) `id` 'q\""
    command = scripts.stage(
        StageRequest(
            "/srv/app",
            "20240501T120001Z-0123456789ab",
            mode="prev",
            prev="20240401T120001Z-0123456789ab",
            remove=[evil],
            shared=["storage/logs"],
            switch=True,
        )
    )
    argv = command.argv
    assert argv[:2] == ["sh", "-c"] and argv[2] == scripts.STAGE_SCRIPT
    assert evil in argv[4:] and evil not in command.env.values()
    assert command.env["STAGE_PREV"] == "20240401T120001Z-0123456789ab"
    with pytest.raises(InputError):
        scripts.stage(
            StageRequest("/srv/app", "20240501T120001Z-0123456789ab", mode="fresh", remove=["../x"])
        )
    with pytest.raises(InputError):
        scripts.stage(StageRequest("/srv/app", "not-an-id", mode="fresh"))
    assert scripts.host_deploy_root("/srv/{host}/app", "web-1") == "/srv/web-1/app"
    with pytest.raises(InputError):
        scripts.host_deploy_root("/srv/{host}/app", "..")


def test_wait_healthy_retries_then_fails() -> None:
    answers = iter(["down", "down", None])
    slept: list[float] = []
    check = HealthCheck(command="true", retries=5, interval_s=0.5)
    assert wait_healthy(check, lambda: next(answers), host="h", sleep=slept.append) == 3
    assert slept == [0.5, 0.5]
    with pytest.raises(HealthCheckFailed, match="after 2 attempt"):
        wait_healthy(
            HealthCheck(command="true", retries=1, interval_s=0),
            lambda: "HTTP 503",
            host="h",
            sleep=lambda s: None,
        )


def test_approval_markdown_lists_commits_and_hosts() -> None:
    text = approval_markdown(
        app="web",
        env="prod",
        version="v2",
        commit_sha="b" * 40,
        current_version="v1",
        current_sha="a" * 40,
        commits=[Commit("b" * 40, "fix | bug", "Ann")],
        changed_files=["index.php"],
        hosts=["web-1", "web-2"],
        requested_by="al",
    )
    assert "`aaaaaaaaaaaa` (v1) → `bbbbbbbbbbbb`" in text
    assert "fix \\| bug" in text and "web-1, web-2" in text


#: three release ids in deploy order
RIDS = (
    "20240501T120001Z-aaaaaaaaaaaa",
    "20240501T120002Z-bbbbbbbbbbbb",
    "20240501T120003Z-cccccccccccc",
)


def _payload(path: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    return path


def _spec(payload: Path, root: Path, rid: str, **kw: object) -> ReleaseSpec:
    return ReleaseSpec(
        app="web",
        env="test",
        release_id=rid,
        commit_sha=rid[-12:],
        ref="v",
        payload_dir=payload,
        manifest=build_manifest(payload),
        deploy_root=str(root),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("path", ["tar", "stream", "rsync"])
def test_engine_local_first_incremental_and_back(tmp_path: Path, path: str) -> None:
    """The three ways a change travels: an in-memory tar in the stage round trip (small), a
    tar file streamed in the same round trip (large, with a scratch dir), rsync (large,
    without one)."""
    root = tmp_path / "root"
    limit = 10**9 if path == "tar" else 0
    scratch = tmp_path / "scratch" if path == "stream" else None
    ex = LocalExecutor("local")
    files = {"a.txt": "a" * 5000, "dir/b.txt": "b", "shared/logs/x": "x"}
    p1 = _payload(tmp_path / "p1", files)
    r1, r2 = "20240501T120001Z-aaaaaaaaaaaa", "20240501T120002Z-bbbbbbbbbbbb"
    hooks = Hooks(post_switch=['echo "$QUAYSIDE_RELEASE" >> "$QUAYSIDE_DEPLOY_ROOT/log"'])
    kw = {"shared_paths": ("shared/logs",), "hooks": hooks, "inline_max_bytes": limit}
    spec1 = _spec(p1, root, r1, scratch_dir=scratch, **kw)
    first = deploy_host(ex, "local", spec1)
    assert first.status == "succeeded", first
    assert os.readlink(root / "current") == f"releases/{r1}"
    assert (root / "current/shared/logs").is_symlink()
    assert (root / "log").read_text() == f"{r1}\n"

    p2 = _payload(tmp_path / "p2", {**files, "dir/b.txt": "B"})
    spec2 = _spec(p2, root, r2, scratch_dir=scratch, **kw)
    second = deploy_host(ex, "local", spec2)
    assert second.status == "succeeded", second
    assert second.round_trips == (4 if path == "rsync" else 3)  # facts, stage(s), one hook
    # the unchanged 5,000-byte file did not travel again (both counts hold the commands too)
    assert second.bytes_sent < first.bytes_sent - 4_000 and second.files_sent == 1
    if scratch is not None:  # one tar per distinct change, the caller deletes the directory
        assert len(list(scratch.glob("*.tar"))) == 2
    new, old = root / "releases" / r2, root / "releases" / r1
    assert (new / "a.txt").stat().st_ino == (old / "a.txt").stat().st_ino
    assert (new / "dir/b.txt").read_text() == "B" and (old / "dir/b.txt").read_text() == "b"
    assert (new / MANIFEST_FILENAME).read_text() == spec2.manifest_json()
    again = deploy_host(ex, "local", spec2)
    assert again.status == "no_change"

    switch_back(ex, str(root), r1)
    assert os.readlink(root / "current") == f"releases/{r1}"
    back = rollback_host(
        ex,
        "local",
        RollbackSpec("web", "test", r2, "b", "v", str(root), ("shared/logs",)),
        fetch_payload=lambda: pytest.fail("release is on the host, no restore needed"),
    )
    assert (
        back.status == "succeeded" and back.round_trips == 1 and back.previous == f"releases/{r1}"
    )


def test_engine_failed_health_switches_back(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2 = "20240501T120001Z-aaaaaaaaaaaa", "20240501T120002Z-bbbbbbbbbbbb"
    p1 = _payload(tmp_path / "p1", {"ok": "1"})
    assert deploy_host(ex, "local", _spec(p1, root, r1)).status == "succeeded"
    p2 = _payload(tmp_path / "p2", {"bad": "1"})
    check = HealthCheck(command="test -f ok", retries=0)
    report = deploy_host(ex, "local", _spec(p2, root, r2, health=check))
    assert report.status == "failed" and report.step == "health"
    assert "switched back" in report.message
    assert os.readlink(root / "current") == f"releases/{r1}"


def test_http_probe_against_a_real_server() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from quayside.deploy.health import http_probe, probe_url

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        check = HealthCheck(url="http://{address}:" + str(server.server_port) + "/ok")
        url = probe_url(check, host="web-1", address="127.0.0.1")
        assert url == f"{base}/ok"
        assert http_probe(url, 2)() is None
        assert "HTTP 503" in (http_probe(f"{base}/down", 2)() or "")
        assert "ConnectError" in (http_probe("http://127.0.0.1:9/", 1)() or "")
    finally:
        server.shutdown()


def test_manifest_patch_sends_only_the_changed_middle() -> None:
    old = '{"entries":{"a":{"sha256":"11"},"b":{"sha256":"22"},"c":{"sha256":"33"}}}'
    new = '{"entries":{"a":{"sha256":"11"},"b":{"sha256":"29"},"c":{"sha256":"33"}}}'
    head, tail, _, middle = manifest_patch(old, new)
    assert old[:head] + middle.decode() + old[len(old) - tail :] == new
    assert len(middle) == 1
    head, tail, _, middle = manifest_patch(old, old)
    assert middle == b"" and head + tail == len(old)


def test_manifest_patch_falls_back_when_host_manifest_differs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2 = "20240501T120001Z-aaaaaaaaaaaa", "20240501T120002Z-bbbbbbbbbbbb"
    p1 = _payload(tmp_path / "p1", {"a": "1", "b": "2"})
    assert deploy_host(ex, "local", _spec(p1, root, r1)).status == "succeeded"
    recorded = root / "releases" / r1 / MANIFEST_FILENAME
    recorded.write_text(recorded.read_text().replace(",", ", "))  # same content, other bytes
    p2 = _payload(tmp_path / "p2", {"a": "1", "b": "3"})
    spec2 = _spec(p2, root, r2)
    report = deploy_host(ex, "local", spec2)
    assert report.status == "succeeded", report
    assert (root / "releases" / r2 / MANIFEST_FILENAME).read_text() == spec2.manifest_json()


def test_manifest_patch_matches_a_bytewise_scan() -> None:
    import random

    rng = random.Random(7)
    for _ in range(300):
        old = "".join(rng.choice("ab") for _ in range(rng.randint(0, 12)))
        new = "".join(rng.choice("ab") for _ in range(rng.randint(0, 12)))
        head, tail, _, middle = manifest_patch(old, new)
        limit = min(len(old), len(new))
        want_head = 0
        while want_head < limit and old[want_head] == new[want_head]:
            want_head += 1
        want_tail = 0
        while want_tail < limit - want_head and old[-1 - want_tail] == new[-1 - want_tail]:
            want_tail += 1
        assert (head, tail) == (want_head, want_tail), (old, new)
        assert (old[:head] + middle.decode() + old[len(old) - tail :]) == new


def _known(spec: ReleaseSpec) -> Manifest:
    return spec.manifest.with_shared(spec.shared_paths)


def _after(
    last: ReleaseSpec, report: HostReport, payload: Path, root: Path, rid: str
) -> ReleaseSpec:
    """The next release's spec, expecting the host as ``last`` left it (``report``)."""
    assert report.facts_after is not None
    return _spec(
        payload,
        root,
        rid,
        known_manifest=_known(last),
        expected_facts={"local": report.facts_after},
    )


def test_a_host_as_the_last_deploy_left_it_is_staged_in_one_guarded_round_trip(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2, r3 = RIDS
    spec1 = _spec(_payload(tmp_path / "p1", {"a": "1", "b": "2"}), root, r1)
    first = deploy_host(ex, "local", spec1)
    assert first.status == "succeeded" and first.facts_after is not None
    assert f"current:releases/{r1}" in first.facts_after

    p2 = _payload(tmp_path / "p2", {"a": "1", "b": "3"})
    spec2 = _after(spec1, first, p2, root, r2)
    second = deploy_host(ex, "local", spec2)
    assert second.status == "succeeded", second
    assert second.round_trips == 1  # no facts round trip
    assert os.readlink(root / "current") == f"releases/{r2}"
    assert (root / "current" / "b").read_text() == "3"
    assert build_manifest(root / "releases" / r2) == spec2.manifest
    assert second.facts_after is not None and f"release:{r1}" in second.facts_after

    # the host changed meanwhile (a release dir appeared): the guard touches nothing, answers
    # with the real facts, and the host is staged from them
    stray = root / "releases" / "20240501T120002Z-dddddddddddd"
    stray.mkdir()
    spec3 = _after(spec2, second, _payload(tmp_path / "p3", {"a": "1", "b": "4"}), root, r3)
    third = deploy_host(ex, "local", spec3)
    assert third.status == "succeeded", third
    assert third.round_trips == 2  # the guarded try, then the stage
    assert os.readlink(root / "current") == f"releases/{r3}"
    assert (root / "current" / "b").read_text() == "4"
    assert not stray.exists()  # never sealed: what an interrupted run leaves, removed


def test_a_guard_that_expects_another_current_release_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2 = "20240501T120001Z-aaaaaaaaaaaa", "20240501T120002Z-bbbbbbbbbbbb"
    spec1 = _spec(_payload(tmp_path / "p1", {"a": "1"}), root, r1)
    first = deploy_host(ex, "local", spec1)
    assert first.facts_after is not None
    lie = first.facts_after.replace(r1, "20240401T120001Z-eeeeeeeeeeee")
    spec2 = _spec(
        _payload(tmp_path / "p2", {"a": "2"}),
        root,
        r2,
        known_manifest=_known(spec1),
        expected_facts={"local": lie},
    )
    body = b"not a tar at all"
    request = StageRequest(
        str(root),
        r2,
        mode="prev",
        prev="20240401T120001Z-eeeeeeeeeeee",
        extract="tar",
        payload_bytes=len(body),
        switch=True,
        guard=(spec1.manifest_sha256(), lie),
    )
    command = scripts.stage(request)
    result = ex.run(
        command.argv, env=command.env, stdin=scripts.stage_stdin(request, body), check=False
    )
    assert result.exit_code == scripts.GUARD_EXIT
    assert result.stdout.startswith(scripts.GUARD_MISMATCH + "\n")
    assert f"current:releases/{r1}" in result.stdout
    assert sorted(p.name for p in (root / "releases").iterdir()) == [r1]
    assert os.readlink(root / "current") == f"releases/{r1}"
    report = deploy_host(ex, "local", spec2)  # and the engine recovers from it
    assert report.status == "succeeded" and report.round_trips == 2
    assert (root / "current" / "a").read_text() == "2"


def test_expected_facts_are_kept_merged_and_forgotten(tmp_path: Path) -> None:
    from quayside.deploy import expected_facts

    path = tmp_path / "host-facts" / "web" / "prod.json"
    assert expected_facts.load(path) == {}
    expected_facts.save(path, {}, {"web-1": "current:a", "web-2": "current:b"})
    assert expected_facts.load(path) == {"web-1": "current:a", "web-2": "current:b"}
    before = expected_facts.load(path)
    expected_facts.save(path, before, {"web-1": "current:c"}, forget=["web-2"])
    assert expected_facts.load(path) == {"web-1": "current:c"}
    for garbage in ("not json", "[1, 2]", '{"web-1": 3}'):
        path.write_text(garbage)
        assert expected_facts.load(path) == {}  # a lost file only costs a facts round trip
    assert not list(path.parent.glob(".*.tmp"))


def test_tar_file_names_are_never_options(tmp_path: Path) -> None:
    """GNU tar reads the file list verbatim: a payload file named like a tar option is
    archived as a file; owners are recorded as 0; the manifest goes in last."""
    import tarfile

    evil = "--checkpoint-action=exec=touch pwned"
    payload = _payload(tmp_path / "p", {evil: "x", "dir/-C": "y", "a b/$(id)": "z"})
    out = build_tar_file(tmp_path / "s" / "t.tar", payload, [evil, "dir/-C", "a b/$(id)"], "{}")
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [evil, "dir/-C", "a b/$(id)", scripts.MANIFEST_NEW]
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}
    assert not (payload / "pwned").exists() and not Path("pwned").exists()
    assert list((tmp_path / "s").iterdir()) == [out]  # the side files are gone


def test_plans_are_made_before_the_fan_out_once_per_distinct_facts(tmp_path: Path) -> None:
    """prepare_plans plans for the facts the last deploy left (one plan for hosts that look
    alike), without touching a host; the host's deploy then finds its plan made."""
    from quayside.plans.release import HostFacts, plan_release

    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2 = "20240501T120001Z-aaaaaaaaaaaa", "20240501T120002Z-bbbbbbbbbbbb"
    spec1 = _spec(_payload(tmp_path / "p1", {"a": "1", "b": "2"}), root, r1)
    first = deploy_host(ex, "local", spec1)
    spec2 = _after(spec1, first, _payload(tmp_path / "p2", {"a": "1", "b": "3"}), root, r2)
    assert first.facts_after is not None
    other = first.facts_after.replace(f"release:{r1}", f"release:{r1}\nrelease:{r1[:-1]}b")
    # a host whose current release has the new id but other content cannot be planned: left
    # for its own task to report, never raised here
    clash = first.facts_after.replace(f"current:releases/{r1}", f"current:releases/{r2}")
    with pytest.raises(InputError, match="different content"):
        known = spec2.known_manifest_sha256()
        assert known is not None and spec2.known_manifest is not None
        held = {known: spec2.known_manifest}
        plan_release(HostFacts.from_output(clash, str(root), held), spec2.target())
    spec2 = replace(
        spec2,
        expected_facts={
            "local": first.facts_after,
            "twin": first.facts_after,
            "odd": other,
            "clash": clash,
        },
    )
    before = sorted(p.name for p in (root / "releases").iterdir())

    assert prepare_plans(spec2, ["local", "twin", "odd", "clash", "never-deployed"]) == 3
    assert sorted(p.name for p in (root / "releases").iterdir()) == before  # nothing touched
    plans = [k for k in spec2.memo._values if k[0] == "plan"]
    assert len(plans) == 2  # the clash made none

    second = deploy_host(ex, "local", spec2)
    assert second.status == "succeeded" and second.round_trips == 1
    assert len([k for k in spec2.memo._values if k[0] == "plan"]) == 2  # the prepared one
    # without a known manifest there are no expected facts to plan from
    assert prepare_plans(replace(spec2, known_manifest=None), ["local"]) == 0


def _wait_for(path: Path, timeout_s: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not path.is_dir():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.05)


def test_the_host_prepares_the_next_release_and_the_next_deploy_renames_it(
    tmp_path: Path,
) -> None:
    """After a switch the host makes a hard-link copy of the new release in the background;
    the next deploy from that release renames it into place instead of copying, and the file
    it changes is a new file there: the previous release keeps its content."""
    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2, r3 = RIDS
    files = {"a": "1", "d/b": "2", "d/c": "3"}
    spec1 = _spec(_payload(tmp_path / "p1", files), root, r1, next_delay_s=0)
    assert deploy_host(ex, "local", spec1).status == "succeeded"
    spare = root / f"{scripts.NEXT_PREFIX}{r1}"
    _wait_for(spare)
    assert (spare / "a").stat().st_ino == (root / "releases" / r1 / "a").stat().st_ino
    assert not list(root.glob(f"{scripts.NEXT_PREFIX}*.tmp-*"))

    spec2 = _spec(_payload(tmp_path / "p2", {**files, "d/b": "changed"}), root, r2, next_delay_s=0)
    second = deploy_host(ex, "local", spec2)
    assert second.status == "succeeded", second
    assert not spare.exists()  # renamed into releases/r2
    old, new = root / "releases" / r1, root / "releases" / r2
    assert (old / "d/b").read_text() == "2" and (new / "d/b").read_text() == "changed"
    assert (new / "a").stat().st_ino == (old / "a").stat().st_ino
    assert build_manifest(new) == spec2.manifest
    assert build_manifest(old) == spec1.manifest

    # a stale copy (of a release that is not the one deployed from) is never used
    _wait_for(root / f"{scripts.NEXT_PREFIX}{r2}")
    switch_back(ex, str(root), r1)
    spec3 = _spec(_payload(tmp_path / "p3", {**files, "a": "x"}), root, r3, next_delay_s=0)
    third = deploy_host(ex, "local", spec3)
    assert third.status == "succeeded", third
    assert build_manifest(root / "releases" / r3) == spec3.manifest
    assert (root / "releases" / r3 / "d/b").read_text() == "2"  # from r1, not r2's copy
    _wait_for(root / f"{scripts.NEXT_PREFIX}{r3}")
    # only the copy of the release now serving is kept
    import time

    deadline = time.monotonic() + 20
    while len(list(root.glob(f"{scripts.NEXT_PREFIX}*"))) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.name for p in root.glob(f"{scripts.NEXT_PREFIX}*")] == [f"{scripts.NEXT_PREFIX}{r3}"]


def test_stage_asks_for_the_next_copy_only_when_it_switches() -> None:
    rid = RIDS[1]

    def delay(**kw: object) -> str:
        request = StageRequest("/srv/a", rid, mode="keep", prepare_next=True, **kw)  # type: ignore[arg-type]
        return scripts.stage(request).env["STAGE_NEXT_DELAY"]

    assert delay(switch=True) == str(scripts.NEXT_DELAY_S)
    assert delay(switch=True, next_delay_s=0) == "0"
    assert delay() == ""  # no switch: no copy
    for bad in (-1, 601):
        with pytest.raises(InputError, match="next_delay_s"):
            delay(switch=True, next_delay_s=bad)


def test_a_release_replaced_before_its_copy_starts_is_not_copied(tmp_path: Path) -> None:
    """The copy starts after the delay only if the release still serves: a release deployed
    over within the delay leaves no copy behind, the one that replaced it gets one."""
    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2, _ = RIDS
    files = {"a": "1", "d/b": "2"}
    spec1 = _spec(_payload(tmp_path / "p1", files), root, r1, next_delay_s=1)
    assert deploy_host(ex, "local", spec1).status == "succeeded"
    spec2 = _spec(_payload(tmp_path / "p2", {**files, "a": "x"}), root, r2, next_delay_s=4)
    assert deploy_host(ex, "local", spec2).status == "succeeded"
    import time

    time.sleep(2.5)  # r1's job has woken up (1 s after its switch), r2's has not (4 s)
    assert not list(root.glob(f"{scripts.NEXT_PREFIX}*"))
    _wait_for(root / f"{scripts.NEXT_PREFIX}{r2}")
    assert [p.name for p in root.glob(f"{scripts.NEXT_PREFIX}*")] == [f"{scripts.NEXT_PREFIX}{r2}"]
    assert (root / "releases" / r2 / "a").read_text() == "x"


def test_the_facts_a_stage_prints_after_it_are_what_read_facts_prints(tmp_path: Path) -> None:
    """The stage builds its facts with shell builtins (no readlink, no second hash), the
    facts reader with the full ``facts`` function: the same text, or a guarded stage would
    never match (or match the wrong state). Checked after a first and a guarded stage."""
    from quayside.commands.release import read_facts

    root = tmp_path / "root"
    ex = LocalExecutor("local")
    r1, r2, _ = RIDS
    files = {"a": "1", "d/b": "2"}

    def facts_now(spec: ReleaseSpec) -> str:
        return ex.run(read_facts(str(root), spec.manifest_sha256())).stdout.rstrip("\n")

    spec1 = _spec(_payload(tmp_path / "p1", files), root, r1, next_delay_s=0)
    first = deploy_host(ex, "local", spec1)
    assert first.status == "succeeded" and first.facts_after == facts_now(spec1)
    spec2 = _spec(
        _payload(tmp_path / "p2", {**files, "a": "x"}),
        root,
        r2,
        known_manifest=_known(spec1),
        expected_facts={"local": first.facts_after or ""},
        next_delay_s=0,
    )
    second = deploy_host(ex, "local", spec2)
    assert second.status == "succeeded" and second.round_trips == 1  # guarded
    assert second.facts_after == facts_now(spec2)
    assert f"manifest-same:{spec2.manifest_sha256()}" in (second.facts_after or "")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"mode": "fresh", "guard": ("a" * 64, "current:")}, "guarded stage needs mode 'prev'"),
        ({"guard": ("a" * 64, "hello")}, "not facts a host prints"),
        ({"guard": ("a" * 64, "current:\0")}, "not facts a host prints"),
        ({"guard": ("not-a-sha", "current:")}, "is not a sha256"),
        ({"patch_middle": b"x"}, "patch middle needs a manifest patch"),
        ({"manifest_patch": (1, 1, "a" * 64), "patch_middle": "é".encode()}, "as an argument"),
        ({"manifest_patch": (1, 1, "a" * 64), "patch_middle": b"x\0y"}, "as an argument"),
        ({"manifest_patch": (-1, 1, "a" * 64)}, "needs mode 'prev' and sizes"),
    ],
)
def test_stage_refuses_what_it_cannot_place(kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"mode": "prev", "prev": RIDS[0], **kw}
    with pytest.raises(InputError, match=message):
        scripts.stage(StageRequest("/srv/a", RIDS[1], **args))  # type: ignore[arg-type]


def test_keep_releases_keeps_exactly_that_many_on_deploy_and_rollback(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ex = LocalExecutor("local")
    rids = [f"2024050{d}T120000Z-{c * 12}" for d, c in zip(range(1, 6), "abcde", strict=True)]
    for i, rid in enumerate(rids[:4]):
        payload = _payload(tmp_path / f"p{i}", {"a": str(i)})
        report = deploy_host(ex, "local", _spec(payload, root, rid, keep_releases=2))
        assert report.status == "succeeded", report
        assert sorted(p.name for p in (root / "releases").iterdir()) == rids[max(0, i - 1) : i + 1]
    # a rollback to the previous release prunes to two as well: nothing to prune here
    spec = RollbackSpec("web", "test", rids[2], "c", "v", str(root), keep_releases=2)
    back = rollback_host(ex, "local", spec, fetch_payload=lambda: pytest.fail("no restore"))
    assert back.status == "succeeded", back
    assert sorted(p.name for p in (root / "releases").iterdir()) == rids[2:4]
    # one more deploy from there (current rids[2]), then a rollback that has to prune
    payload = _payload(tmp_path / "p4", {"a": "4"})
    assert deploy_host(ex, "local", _spec(payload, root, rids[4], keep_releases=3)).ok
    assert sorted(p.name for p in (root / "releases").iterdir()) == rids[2:5]
    spec = RollbackSpec("web", "test", rids[3], "d", "v", str(root), keep_releases=2)
    back = rollback_host(ex, "local", spec, fetch_payload=lambda: pytest.fail("no restore"))
    assert back.status == "succeeded", back
    import time

    deadline = time.monotonic() + 20  # a rollback prunes in the background, after switching
    while len(list((root / "releases").iterdir())) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(p.name for p in (root / "releases").iterdir()) == rids[3:5]
    assert os.readlink(root / "current") == f"releases/{rids[3]}"


def test_a_current_made_by_hand_fails_with_the_cause_and_the_next_step(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "current").mkdir(parents=True)
    ex = LocalExecutor("local")
    report = deploy_host(ex, "local", _spec(_payload(tmp_path / "p", {"a": "1"}), root, RIDS[0]))
    assert report.status == "failed" and report.step == "stage"
    assert "current is a directory, not a symlink (made by hand?): move it away" in report.message
    assert (root / "current").is_dir() and not (root / "releases" / RIDS[0]).exists()
