"""Small pieces the release flows lean on: the non-blocking progress artifact, background
scratch removal, manifest variants, the one-certificate CA file for an HTTP API."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from quayside.manifest import Entry, Manifest
from quayside.plans.release import HostFacts
from quayside.scratch import BackgroundRemoval
from quayside.settings import load_settings
from quayside.stack import api_tls
from quayside.stack.processes import api_ca_path, platform_env


def test_progress_never_blocks_a_host_and_always_sends_the_last_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import quayside.tasks.release_progress as release_progress

    sent: list[float] = []
    release = threading.Event()

    def slow_update(artifact_id: Any, value: float) -> None:
        release.wait(5)  # the API is slow: every host must go on meanwhile
        sent.append(value)

    monkeypatch.setattr(release_progress, "create_progress_artifact", lambda *a, **k: uuid4())
    monkeypatch.setattr(release_progress, "update_progress_artifact", slow_update)
    with release_progress.Progress(10, "k", "d", interval_s=0) as progress:

        def hosts_finish() -> None:
            for _ in range(10):
                progress.advance()
                time.sleep(0.01)

        hosts = threading.Thread(target=hosts_finish)
        hosts.start()
        hosts.join(4)  # the API call is still held: a host waiting for it would be stuck here
        assert not hosts.is_alive() and not release.is_set() and progress.done == 10
        release.set()
    assert sent[-1] == 100.0 and sent == sorted(sent) and len(sent) < 10


def test_progress_throttles_updates_and_survives_api_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import quayside.tasks.release_progress as release_progress

    sent: list[float] = []

    def update(artifact_id: Any, value: float) -> None:
        sent.append(value)
        if len(sent) == 1:
            raise RuntimeError("API down")

    monkeypatch.setattr(release_progress, "create_progress_artifact", lambda *a, **k: uuid4())
    monkeypatch.setattr(release_progress, "update_progress_artifact", update)
    with release_progress.Progress(20, "k", "d", interval_s=60) as progress:
        for _ in range(20):
            progress.advance()
            time.sleep(0.005)
    assert sent[-1] == 100.0 and len(sent) <= 2  # the first value, then the last one


def test_progress_without_an_artifact_does_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    import quayside.tasks.release_progress as release_progress

    def refuse(*a: Any, **k: Any) -> Any:
        raise RuntimeError("no API")

    monkeypatch.setattr(release_progress, "create_progress_artifact", refuse)
    monkeypatch.setattr(release_progress, "update_progress_artifact", refuse)
    monkeypatch.setattr(
        release_progress, "get_run_logger", lambda: __import__("logging").getLogger("t")
    )
    progress = release_progress.Progress(2, "k", "d")
    progress.advance()
    progress.advance()
    progress.close(5)
    assert progress.artifact_id is None and not progress._thread.is_alive()


def test_background_removal_deletes_once_and_join_waits(tmp_path: Path) -> None:
    victims = []
    for name in ("a", "b"):
        d = tmp_path / name
        (d / "x" / "y").mkdir(parents=True)
        (d / "x" / "y" / "f").write_text("1")
        victims.append(d)
    removal = BackgroundRemoval()
    removal.remove(*victims)
    removal.remove(*victims)  # already started: nothing more
    removal.remove(tmp_path / "missing")
    removal.join(10)
    assert not any(v.exists() for v in victims)


def test_in_background_carries_the_context_and_hands_back_errors() -> None:
    import contextvars

    from quayside.tasks.background import InBackground

    where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="unset")
    where.set("the flow run")
    seen: list[str] = []
    InBackground(lambda: seen.append(where.get())).join(5)
    assert seen == ["the flow run"]

    def refuse() -> None:
        raise RuntimeError("API said no")

    with pytest.raises(RuntimeError, match="API said no"):
        InBackground(refuse).join(5)
    stuck = threading.Event()
    waiting = InBackground(stuck.wait, 5)
    with pytest.raises(TimeoutError, match="did not finish"):
        waiting.join(0.05)
    stuck.set()
    waiting.join(5)


def test_with_shared_returns_the_same_object_for_the_same_paths() -> None:
    m = Manifest({"a": Entry("file", 0o644, 1, "0" * 64)})
    assert m.with_shared(()) is m
    s1 = m.with_shared(["logs", "env"])
    assert m.with_shared(("env", "logs")) is s1 and s1.shared == ("env", "logs")
    assert s1.to_json() == Manifest(dict(m.entries), ("env", "logs")).to_json()
    assert s1 == Manifest(dict(m.entries), ("logs", "env")) and s1 != m


def test_facts_with_manifest_same_use_the_callers_manifest() -> None:
    m = Manifest({"a": Entry("file", 0o644, 1, "0" * 64)})
    rid = "20240501T120001Z-aaaaaaaaaaaa"
    out = f"current:releases/{rid}\nrelease:{rid}\nmanifest-same:{'f' * 64}\n"
    assert HostFacts.from_output(out, None, {"f" * 64: m}).current_manifest is m
    assert HostFacts.from_output(out, None, {"e" * 64: m}).current_manifest is None
    assert HostFacts.from_output(out).current_manifest is None


def test_api_ca_file_for_an_http_api_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUAYSIDE_HOME", str(tmp_path))
    settings = load_settings()
    env = platform_env(settings, tmp_path, {})
    assert env[api_tls.CERT_FILE_SETTING] == str(api_ca_path(settings))
    own = platform_env(settings, tmp_path, {api_tls.CERT_FILE_SETTING: "/etc/my-ca.pem"})
    assert own[api_tls.CERT_FILE_SETTING] == "/etc/my-ca.pem"
    assert not api_tls.needs_api_ca("https://prefect.example/api", {})
    written = api_tls.write_api_ca(api_ca_path(settings))
    text = written.read_text()
    assert text.count("BEGIN CERTIFICATE") == 1 and text.endswith("-----END CERTIFICATE-----\n")
    import ssl

    ssl.create_default_context(cafile=str(written))  # a usable CA file
    with pytest.raises(ValueError, match="no PEM certificate"):
        api_tls.first_certificate("nothing here")


@pytest.mark.xdist_group("platform-2")
@pytest.mark.prefect
def test_fan_out_runs_every_host_in_one_task_run_and_collects_each_outcome(
    platform: Any,
) -> None:
    """One task run for the group (not one per host), the hosts in threads inside it with the
    task run's logger, at most ``max_parallel`` at once, and one host's exception is that
    host's outcome only."""
    import asyncio

    from prefect import flow, get_client, get_run_logger
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from quayside.tasks.fanout import fan_out

    lock = threading.Lock()
    running = {"now": 0, "most": 0}

    def probe(host: str) -> str:
        get_run_logger().info("probing %s", host)  # inside the task run's context
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.2)
        with lock:
            running["now"] -= 1
        if host == "bad":
            raise RuntimeError("bad host")
        return host.upper()

    @flow(name="fan-out-probe")
    def probe_flow() -> tuple[Any, str]:
        from prefect.runtime import flow_run

        result = fan_out("probe", probe, ["a", "bad", "c", "d"], 2)
        return result, str(flow_run.get_id())

    result, run_id = probe_flow()
    assert [(o.host, o.value) for o in result.outcomes] == [
        ("a", "A"),
        ("bad", None),
        ("c", "C"),
        ("d", "D"),
    ]
    assert str(result.outcomes[1].error) == "bad host"
    assert running["most"] == 2

    async def task_run_names() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
            return sorted(r.name for r in runs)

    deadline = time.monotonic() + 30
    names = asyncio.run(task_run_names())
    while not names and time.monotonic() < deadline:  # the server records them in batches
        time.sleep(0.5)
        names = asyncio.run(task_run_names())
    assert names == ["probe: 4 host(s)"]


def test_the_remembered_tree_manifest_round_trips_and_anything_else_is_forgotten(
    tmp_path: Path,
) -> None:
    from quayside.source.mirror import GitMirror
    from quayside.tasks.payload_build import _remember_manifest, remembered_manifest

    mirror = GitMirror(tmp_path, "https://git.example.com/web.git")
    assert remembered_manifest(mirror) is None  # nothing kept yet
    mirror.tree_cache.mkdir(parents=True)
    manifest = Manifest({"a": Entry("file", 0o644, 1, "0" * 64)})
    _remember_manifest(mirror, "c" * 40, manifest)
    kept = remembered_manifest(mirror)
    assert kept is not None and kept.commit == "c" * 40 and kept.manifest == manifest
    assert kept.manifest.to_json() == manifest.to_json()
    for bad in ("", "c" * 40, "c" * 40 + "\n{not json", "c" * 40 + '\n{"entries": 3}'):
        (mirror.tree_cache / "manifest").write_text(bad)
        assert remembered_manifest(mirror) is None, bad


def test_a_build_tree_that_cannot_go_back_is_removed_and_the_run_is_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quayside.errors import LockHeldError
    from quayside.source.mirror import GitMirror
    from quayside.tasks.payload_build import return_build_dir

    mirror = GitMirror(tmp_path / "mirrors", "https://git.example.com/web.git")
    build = tmp_path / "build"
    build.mkdir()
    (build / "a").write_text("x")

    def busy(dest: Path) -> bool:
        raise LockHeldError("the mirror is still being synced")

    monkeypatch.setattr(mirror, "give_back", busy)
    removal = BackgroundRemoval()
    return_build_dir(mirror, build, removal)  # no exception
    removal.join()
    assert not build.exists()


def test_a_completed_body_marks_its_lines_sent_and_a_failed_one_does_not(platform: Any) -> None:
    """The mark a follower stops at (quayside.runs.log_marker): set by a body that returned,
    before the final state; not by one that raised (Prefect logs the error after it)."""
    import asyncio

    from prefect import flow, get_client
    from prefect.runtime import flow_run

    from quayside.runs.log_marker import LABEL
    from quayside.tasks.sync_body import run_sync_body

    def body(fail: bool) -> str:
        if fail:
            raise RuntimeError("the body failed")
        return str(flow_run.get_id())

    @flow(name="log-mark-probe")
    async def probe(fail: bool) -> str:
        return await run_sync_body(body, fail=fail)

    async def labels(run_id: str) -> dict[str, Any]:
        async with get_client() as client:
            return dict((await client.read_flow_run(run_id)).labels)

    done_id = asyncio.run(probe(False))
    assert asyncio.run(labels(done_id)).get(LABEL) == "1"

    async def failing() -> str:
        state = await probe(True, return_state=True)
        assert state.is_failed()
        return str(state.state_details.flow_run_id)

    failed_id = asyncio.run(failing())
    assert LABEL not in asyncio.run(labels(failed_id))
