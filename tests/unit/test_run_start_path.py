"""What a flow run's start and end no longer wait for: Prefect's outside-suspension watch runs
in a thread of its own, the worker's settings environment is computed once, the early-start
wake answers a burst with a few polls, a body's sync twin is built once per flow, the fork
server builds Prefect's deferred models and the ledger's mappers before it forks, and a run
parses its unchanged inventory once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from quayside.stack import job_environment, suspension_watch
from quayside.stack.processes import csrf_support
from quayside.stack.worker_wake import _poll_when_due


def test_the_suspension_watch_neither_delays_the_start_nor_the_end() -> None:
    entered, left, release_enter, release_exit = (threading.Event() for _ in range(4))
    seen: dict[str, Any] = {}

    @contextmanager
    def slow_watch() -> Iterator[None]:  # Prefect's: waits to connect, joins its thread
        seen["thread"] = threading.current_thread().name
        release_enter.wait(5)
        entered.set()
        try:
            yield
        finally:
            release_exit.wait(5)
            left.set()

    with suspension_watch._in_thread(slow_watch):
        assert not entered.is_set()  # the run went on before the watch was connected
        release_enter.set()
        assert entered.wait(5)
    assert not left.is_set()  # the run's end did not wait for the watch to stop
    release_exit.set()
    assert left.wait(5)  # the watch was told to stop, and did, in its own thread
    assert seen["thread"] == "quayside-suspension-watch"


def test_a_failing_watch_does_not_fail_the_run() -> None:
    @contextmanager
    def broken() -> Iterator[None]:
        raise RuntimeError("no events stream")
        yield  # pragma: no cover

    with suspension_watch._in_thread(broken):
        pass


def test_install_makes_prefect_s_engine_use_the_background_watch() -> None:
    import prefect.flow_engine

    original = prefect.flow_engine.observe_flow_run_suspension
    try:
        assert suspension_watch.install()
        assert prefect.flow_engine.observe_flow_run_suspension is (
            suspension_watch.observe_in_background
        )
    finally:
        prefect.flow_engine.observe_flow_run_suspension = original  # type: ignore[assignment]


def test_the_worker_computes_its_settings_environment_once_per_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.workers.process import ProcessJobConfiguration

    calls = []

    def counted(cls: type) -> dict[str, str]:
        calls.append(1)
        return {"PREFECT_API_URL": "http://127.0.0.1:1/api"}

    monkeypatch.setattr(ProcessJobConfiguration, "_base_environment", classmethod(counted))
    monkeypatch.setattr(job_environment, "_settled", None)
    first = job_environment.SettledEnvironmentConfiguration._base_environment()
    first["MINE"] = "changed by one run"
    second = job_environment.SettledEnvironmentConfiguration._base_environment()
    assert second == {"PREFECT_API_URL": "http://127.0.0.1:1/api"}  # a copy per run
    assert len(calls) == 1

    from prefect.settings import Settings

    other = Settings()
    monkeypatch.setattr(job_environment, "get_current_settings", lambda: other)
    job_environment.SettledEnvironmentConfiguration._base_environment()
    assert len(calls) == 2  # other settings: computed again


def test_a_burst_of_announcements_costs_a_few_polls() -> None:
    class Worker:
        polls = 0

        async def get_and_submit_flow_runs(self) -> None:
            self.polls += 1
            await asyncio.sleep(0.05)

    async def burst() -> int:
        worker = Worker()
        due = asyncio.Event()
        polling = asyncio.create_task(_poll_when_due(worker, due))  # type: ignore[arg-type]
        for _ in range(50):
            due.set()
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.3)
        polling.cancel()
        return worker.polls

    polls = asyncio.run(burst())
    assert 1 <= polls <= 3


def test_a_failed_early_poll_does_not_stop_the_next() -> None:
    class Worker:
        polls = 0

        async def get_and_submit_flow_runs(self) -> None:
            self.polls += 1
            raise RuntimeError("API down")

    async def twice() -> int:
        worker = Worker()
        due = asyncio.Event()
        polling = asyncio.create_task(_poll_when_due(worker, due))  # type: ignore[arg-type]
        due.set()
        await asyncio.sleep(0.05)
        due.set()
        await asyncio.sleep(0.05)
        polling.cancel()
        return worker.polls

    assert asyncio.run(twice()) == 2


def test_clients_fetch_csrf_tokens_only_from_a_server_that_wants_them() -> None:
    assert csrf_support({}) == "false"
    assert csrf_support({"PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true"}) == "true"
    assert csrf_support({"PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "1"}) == "true"


def test_a_body_s_sync_twin_is_sync_named_as_the_flow_and_built_once() -> None:
    from quayside.tasks.sync_body import sync_twin

    twin = sync_twin("git-deploy", "abc")
    assert (twin.name, twin.version, twin.isasync) == ("git-deploy", "abc", False)
    assert sync_twin("git-deploy", "abc") is twin
    assert sync_twin("rollback", "abc") is not twin


def test_the_fork_server_prepares_models_and_mappers_before_forking() -> None:
    from quayside.stack.forkserver import build_deferred_models, configure_ledger_mappers

    configure_ledger_mappers()
    build_deferred_models()
    from prefect.client.schemas.objects import FlowRun
    from sqlalchemy.orm import class_mapper

    from quayside.ledger.models import Release

    assert FlowRun.__pydantic_complete__
    assert class_mapper(Release).configured
    assert build_deferred_models() == 0  # nothing left to build


def test_an_unchanged_inventory_is_parsed_once_and_a_changed_one_again(tmp_path: Path) -> None:
    from quayside.inventory import load_inventory

    path = tmp_path / "quayside.yaml"
    text = "hosts:\n  web-1: {address: 127.0.0.1}\napps: {}\n"
    path.write_text(text)
    first = load_inventory(path)
    assert load_inventory(path) is first
    path.write_text(text.replace("web-1", "web-2"))  # same size, same second
    changed = load_inventory(path)
    assert changed is not first
    assert set(changed.hosts) == {"web-2"}


def test_the_fork_server_parses_a_changed_inventory_before_forking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quayside.inventory import load_inventory
    from quayside.stack.forkserver import warm_inventory

    path = tmp_path / "quayside.yaml"
    path.write_text("hosts:\n  db-1: {address: 127.0.0.2}\napps: {}\n")
    monkeypatch.setenv("QUAYSIDE_INVENTORY", str(path))
    warm_inventory()
    from quayside.inventory import load as load_module

    parsed = load_module._last
    assert parsed is not None and parsed[0] == str(path)
    assert load_inventory(path) is parsed[2]  # a run forked now parses nothing
    path.write_text("not: [valid")
    warm_inventory()  # an invalid file is the run's to report


def test_a_run_whose_settings_basis_is_the_server_s_keeps_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quayside.stack.forkserver import settings_basis

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    before = settings_basis()
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "0d6f")  # a run marker, not a setting
    monkeypatch.setenv("QUAYSIDE_HOME", str(tmp_path))
    assert settings_basis() == before
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:2/api")
    assert settings_basis() != before
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # another .env / prefect.toml may apply
    assert settings_basis() != before
    here = settings_basis()
    (tmp_path / "elsewhere" / ".env").write_text("PREFECT_LOGGING_LEVEL=DEBUG\n")
    assert settings_basis() != here  # a settings file written after the server started
    written = settings_basis()
    (tmp_path / "elsewhere" / ".env").write_text("PREFECT_LOGGING_LEVEL=WARNING\n")
    assert settings_basis() != written  # and edited
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "profiles.toml"))
    edited = settings_basis()
    (tmp_path / "profiles.toml").write_text('active = "default"\n')
    assert settings_basis() != edited  # the profiles file too


def test_the_fork_server_hides_what_it_imported_from_the_runs_collections() -> None:
    import subprocess
    import sys

    code = (
        "import gc, sys\n"
        "from quayside.stack.forkserver import freeze_imported_objects\n"
        "freeze_imported_objects()\n"
        "print(gc.get_freeze_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) > 1000  # the imported modules' objects: frozen, not collected
