"""Quayside's side of the git deploy benchmarks: a running ``quayside up`` over the bench
fleet, and its ``git_deploy`` / ``rollback`` flows called in-process against that server (or
one run through the worker), with one inventory app per timed run."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from bench.git_deploy.fleet import Fleet, Host
from bench.harness import PROJECT_DIR, log

#: the environment of every benchmark app in the inventory
ENV = "bench"


def flow_missing(module: str) -> str | None:
    """Why ``quayside/flows/<module>.py`` cannot be benchmarked, or None if it exists."""
    if not (PROJECT_DIR / "quayside" / "flows" / f"{module}.py").exists():
        return f"quayside/flows/{module}.py does not exist yet (the flow has not landed)"
    return None


def inventory_document(
    hosts: Sequence[Host],
    key_file: Path,
    known_hosts: Path,
    mount: Path,
    repo: Path,
    apps: Sequence[str],
) -> dict[str, Any]:
    """quayside.yaml with every host in group ``bench`` and one app per timed run (the same
    repo, deploy root ``<mount>/<app>``), so each run starts with a fresh deploy root and a
    clean ledger history."""
    inventory = {
        "version": 1,
        "hosts": {
            h.name: {
                "address": h.address,
                "port": h.port,
                "user": h.user,
                "key_file": str(key_file),
                "known_hosts": str(known_hosts),
            }
            for h in hosts
        },
        "groups": {"bench": [h.name for h in hosts]},
        "apps": {
            app: {
                "repo": str(repo),
                "deploy_root": f"{mount}/{app}",
                "environments": {
                    ENV: {
                        "groups": ["bench-cold" if app.startswith("cold-") else "bench"],
                        "max_parallel": len(hosts),
                    }
                },
            }
            for app in apps
        },
    }
    # the same hosts with no persisted SSH connection (apps named cold-*)
    hosts_map: dict[str, Any] = inventory["hosts"]  # type: ignore[assignment]
    for h in hosts:
        hosts_map[f"cold-{h.name}"] = {**hosts_map[h.name], "persist_s": 0}
    groups: dict[str, Any] = inventory["groups"]  # type: ignore[assignment]
    groups["bench-cold"] = [f"cold-{h.name}" for h in hosts]
    return inventory


def write_inventory(path: Path, fleet: Fleet, repo: Path, apps: Sequence[str]) -> None:
    """Write :func:`inventory_document` for ``fleet`` to ``path``."""
    document = inventory_document(
        fleet.hosts, fleet.key_file, fleet.known_hosts, fleet.mount, repo, apps
    )
    path.write_text(yaml.safe_dump(document, sort_keys=False))


class Quayside:
    """The flows called in-process against a real Prefect server (``quayside up``)."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        for key in (
            "PREFECT_API_URL",
            "PREFECT_HOME",
            "QUAYSIDE_HOME",
            "QUAYSIDE_INVENTORY",
            "QUAYSIDE_PREFECT_PORT",
            "QUAYSIDE_GATEWAY_PORT",
            "PREFECT_SERVER_ANALYTICS_ENABLED",
        ):
            os.environ[key] = platform.env[key]
        os.environ["PREFECT_API_AUTH_STRING"] = platform.auth_string
        os.environ.pop("QUAYSIDE_DATABASE_URL", None)
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        # as the platform's flow runs have it (quayside.stack.api_tls)
        ca = Path(platform.env["PREFECT_HOME"]) / "api-ca.pem"
        if ca.is_file():
            os.environ["PREFECT_API_SSL_CERT_FILE"] = str(ca)

    def deploy(self, app: str, ref: str) -> Any:
        from quayside.flows.git_deploy import git_deploy

        return asyncio.run(git_deploy(app=app, env=ENV, ref=ref, requested_by="bench"))

    def rollback(self, app: str) -> Any:
        from quayside.flows.rollback import rollback

        return asyncio.run(rollback(app=app, env=ENV, requested_by="bench"))

    def bytes_sent(self, app: str) -> list[int]:
        """release_hosts.bytes_sent of the app's current release, from the ledger."""
        from quayside.ledger.db import make_engine
        from quayside.ledger.release_queries import current_release

        engine = make_engine()
        try:
            release = current_release(engine, app, ENV)
            if release is None:
                return []
            return [h.bytes_sent for h in release.hosts if h.bytes_sent is not None]
        finally:
            engine.dispose()

    def worker_run(self, app: str, ref: str, timeout: float = 900) -> float:
        """Seconds from creating a run of the ``git-deploy`` deployment through the API until
        it is final (includes the worker's poll interval and flow process start-up)."""
        from quayside.runs import client

        start = time.perf_counter()
        handle = client.start_run(
            "git-deploy", {"app": app, "env": ENV, "ref": ref, "requested_by": "bench"}
        )
        deadline = start + timeout
        while time.perf_counter() < deadline:
            status = client.read_run(handle.id)
            if status.final:
                elapsed = time.perf_counter() - start
                if status.state_type != "COMPLETED":
                    raise RuntimeError(f"worker run ended {status.state_name}: {status.message}")
                return elapsed
            time.sleep(0.2)
        raise RuntimeError(f"worker run {handle.id} not final after {timeout} s")


def start_quayside(
    stack: ExitStack, work: Path, fleet: Fleet, repo: Path, apps: Sequence[str]
) -> tuple[Quayside | None, str | None]:
    """``quayside up`` on a fresh data directory under ``work`` with an inventory of ``apps``
    on ``fleet`` (stopped when ``stack`` closes); (Quayside, None), or (None, why not)."""
    from testbed.platform import Platform

    reason = flow_missing("git_deploy")
    if reason is not None:
        return None, reason
    inventory = work / "quayside.yaml"
    write_inventory(inventory, fleet, repo, apps)
    platform = Platform(work / "quayside-home", inventory)
    stack.callback(platform.stop)
    log("starting the platform (quayside up: Prefect server, worker, gateway)")
    started = time.perf_counter()
    try:
        platform.start()
    except Exception as e:
        return None, f"the platform did not start: {str(e).strip()[:300]}"
    log(f"platform up in {time.perf_counter() - started:.1f} s")
    return Quayside(platform), None


class AppNames:
    """``<kind>-0``, ``<kind>-1``, ...: one inventory app per timed Quayside run."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.index = -1

    def next(self) -> str:
        self.index += 1
        return self.current

    @property
    def current(self) -> str:
        return f"{self.kind}-{self.index}"


def app_names(kinds: Sequence[str], repeat: int, *singles: str) -> list[str]:
    """The inventory apps :class:`AppNames` hands out: ``repeat`` per kind, and ``singles``."""
    return [f"{kind}-{i}" for kind in kinds for i in range(repeat)] + list(singles)
