"""The git deploy benchmark's pure parts (bench/git_deploy/): the competitors' argv, the
inventory it gives Quayside, and its results.json entries keeping the published format. No
fleet, no server."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from bench.git_deploy.ansible_runs import PLAYBOOK, playbook_argv
from bench.git_deploy.first_deploy import FirstDeploy
from bench.git_deploy.fleet import Host
from bench.git_deploy.host_floor import ONE_TRIP_SCRIPT, one_trip_argv
from bench.git_deploy.next_release import NextRelease
from bench.git_deploy.notes import HOST_DISK_NOTE
from bench.git_deploy.quayside_runs import ENV, AppNames, app_names, inventory_document
from bench.git_deploy.report import RESULTS, Payload, build_entries, disk_note
from bench.git_deploy.rsync_runs import release_id, rsync_release_argv
from bench.harness import RESULTS_PATH, Timing, ToolResult

SSH = ["ssh", "-p", "2201", "-i", "/k/id", "-o", "BatchMode=yes"]
BULK = (*SSH, "-c", "aes128-gcm@openssh.com")


def host(name: str = "web-1", address: str = "127.0.0.11") -> Host:
    return Host(
        name=name,
        address=address,
        port=2201,
        user="quayside-deploy",
        ssh_argv=SSH,
        root=Path("/fleet") / name / "root",
        bulk_ssh_argv=BULK,
    )


def test_rsync_release_argv_creates_parents_and_links_unchanged_files() -> None:
    argv = rsync_release_argv(host(), "/deploy/incr-0", Path("/t/tree-v2"), "R2", "/deploy/R1")
    assert argv[0] == "rsync"
    assert "--mkpath" in argv[: argv.index("--")]
    assert "--link-dest=/deploy/R1" in argv
    assert argv[argv.index("-e") + 1] == shlex.join(SSH)
    assert argv[-2:] == ["/t/tree-v2/", "quayside-deploy@127.0.0.11:/deploy/incr-0/releases/R2"]
    plain = rsync_release_argv(host(), "/deploy/x", Path("/t/tree-v1"), "R1")
    assert not any(a.startswith("--link-dest") for a in plain)


def test_one_trip_floor_is_one_ssh_with_quaysides_bulk_options() -> None:
    argv = one_trip_argv(host(), "/deploy/floor-1", "R1", "R2")
    assert argv[: len(BULK)] == list(BULK)
    assert argv[len(BULK)] == "quayside-deploy@127.0.0.11"
    remote = shlex.split(argv[-1])  # the executor's quoting may prefix `exec`
    assert remote[-7:] == ["sh", "-c", ONE_TRIP_SCRIPT, "one-trip", "/deploy/floor-1", "R1", "R2"]


def test_playbook_argv_sets_forks_only_when_asked() -> None:
    default = playbook_argv(
        "/v/ansible-playbook", Path("/w/inv.yml"), None, "/d", "R1", Path("/t.tgz")
    )
    assert default[:4] == ["/v/ansible-playbook", "-i", "/w/inv.yml", str(PLAYBOOK)]
    assert "--forks" not in default
    assert default[-6:] == ["-e", "deploy_root=/d", "-e", "release=R1", "-e", "tarball=/t.tgz"]
    twenty = playbook_argv(
        "/v/ansible-playbook", Path("/w/inv.yml"), 20, "/d", "R1", Path("/t.tgz")
    )
    assert twenty[twenty.index("--forks") + 1] == "20"


def test_release_ids_are_the_same_every_run_and_differ_per_tag() -> None:
    assert release_id("a" * 40) == release_id("a" * 40)
    assert release_id("a" * 40) != release_id("b" * 40, 60)


def test_inventory_gives_every_timed_run_its_own_app_and_cold_hosts_no_persisted_ssh() -> None:
    hosts = [host("web-1", "127.0.0.11"), host("web-2", "127.0.0.12")]
    apps = app_names(("incr", "cold"), 2, "warmup-0")
    assert apps == ["incr-0", "incr-1", "cold-0", "cold-1", "warmup-0"]
    doc = inventory_document(
        hosts, Path("/k/id"), Path("/k/known"), Path("/deploy"), Path("/repo"), apps
    )
    assert doc["apps"]["incr-1"]["deploy_root"] == "/deploy/incr-1"
    assert doc["apps"]["incr-1"]["environments"][ENV] == {"groups": ["bench"], "max_parallel": 2}
    assert doc["apps"]["cold-0"]["environments"][ENV]["groups"] == ["bench-cold"]
    assert doc["groups"] == {
        "bench": ["web-1", "web-2"],
        "bench-cold": ["cold-web-1", "cold-web-2"],
    }
    assert doc["hosts"]["cold-web-2"] == {**doc["hosts"]["web-2"], "persist_s": 0}
    assert "persist_s" not in doc["hosts"]["web-2"]


def test_app_names_follow_the_inventory() -> None:
    names = AppNames("fanout")
    assert [names.next(), names.next()] == app_names(("fanout",), 2)


def test_disk_note_says_why_the_hosts_are_not_on_a_tmpfs() -> None:
    assert disk_note(None) == HOST_DISK_NOTE
    assert "mounting a tmpfs needs root" in disk_note("mounting a tmpfs needs root")


def timed(key: str, seconds: float, outputs: list | None = None) -> ToolResult:
    return ToolResult(key, key, f"{key} work", Timing(seconds, [seconds] * 3, outputs or []))


def test_entries_keep_the_published_results_format() -> None:
    """Every key the published bench/results.json has for the three results is still written
    (and no new one), so docs/benchmarks.md and readers of results.json keep working."""
    first = FirstDeploy(
        tools=[
            timed("quayside", 5.0),
            timed("serial_rsync", 21.0),
            timed("parallel_rsync", 12.0),
            timed("ansible_forks5", 64.0),
            timed("ansible_forks20", 63.0),
        ],
        worker_s=8.5,
    )
    following = NextRelease(
        incremental=[
            timed("quayside", 0.9, [[17_000, 17_100]] * 3),
            timed("quayside_cold", 1.5, [[17_000, 17_100]] * 3),
            timed("parallel_rsync_link_dest", 7.7, [[73_000, 74_000]] * 3),
        ],
        rollback=[timed("quayside", 0.5), timed("ssh_loop_parallel", 2.1)],
        floor=timed("one_trip_floor", 1.2),
        prepare_waits=[2.5, 2.4, 2.6],
        empty_runs={"async": [0.1] * 3, "sync": [1.0] * 3, "tasks": [0.4] * 3},
    )
    payload = Payload(
        hosts=20,
        files=5000,
        total_bytes=50_000_000,
        changed_size=7713,
        tmpfs_problem=None,
        load_start=1.5,
    )
    entries = build_entries(payload, first, following, RESULTS, 3)
    assert list(entries) == list(RESULTS)
    published = json.loads(RESULTS_PATH.read_text())
    for name in RESULTS:
        assert set(entries[name]) == set(published[name]), name
    incremental = entries["git_deploy_incremental"]
    assert incremental["ratio_vs_parallel_rsync_link_dest"] == round(7.7 / 0.9, 2)
    assert incremental["bytes_sent_per_host"] == {
        "quayside": 17_050,
        "parallel_rsync_link_dest": 73_500,
    }
    assert incremental["parallel_rsync_link_dest_vs_quayside_cold"] == round(7.7 / 1.5, 2)
    assert incremental["host_work_floor_s"] == 1.2
    assert entries["git_deploy_fanout"]["quayside_worker_path_s"] == 8.5
    assert "7,713 bytes" in incremental["description"]
    only = build_entries(payload, first, following, ["git_deploy_rollback"], 3)
    assert list(only) == ["git_deploy_rollback"]


def test_entries_say_why_the_worker_path_was_not_measured() -> None:
    first = FirstDeploy(
        tools=[ToolResult("quayside", "q", "q", not_measured="the platform did not start")],
        worker_reason="the platform did not start",
    )
    payload = Payload(20, 5000, 50_000_000, 7713, "mount failed: x", 1.0)
    entry = build_entries(payload, first, NextRelease(), ["git_deploy_fanout"], 3)[
        "git_deploy_fanout"
    ]
    assert entry["quayside_s"] is None
    assert any("Not measured: the platform did not start." in n for n in entry["notes"])
    assert any("mount failed: x" in n for n in entry["notes"])
