"""Operators' views of an image app's containers, shared by ``quayside ps/logs/restart`` and
the gateway's container endpoints: open every Docker host of an app's environment, list its
containers (the serving one marked), restart it with a probe before the next host (the serving
one's output: :mod:`quayside.images.containers_logs`). No Prefect; the callers check who may ask."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from quayside.errors import InputError
from quayside.images import containers_docker as engine
from quayside.images.containers_spec import probe_url
from quayside.images.image_release_host import HostState, read_state
from quayside.inventory.image_models import ImageRun
from quayside.inventory.resolve import Target


@dataclass
class OpenHost:
    """One Docker host of the app, with its engine client and executor open."""

    name: str
    client: Any
    executor: Any

    def state(self, run: ImageRun, app: str, env: str) -> HostState:
        return read_state(self.client, self.executor, run, app, env)


@contextmanager
def open_hosts(target: Target) -> Iterator[tuple[ImageRun, list[OpenHost]]]:
    """The app's run settings and every host of the target, opened (closed afterwards).

    Raises:
        InputError: not an image app, or a host without ``docker:``.
        quayside.images.containers_docker.ContainerError: an engine does not answer.
    """
    from quayside.executors.factory import executor_for

    if target.app.image is None:
        raise InputError(
            f"{target.app_name} is not an image app (apps.{target.app_name}.image is not set)"
        )
    opened: list[OpenHost] = []
    try:
        for name, host in target.hosts:
            if host.docker is None:
                raise InputError(f"quayside.yaml: hosts.{name}.docker: not set")
            client = engine.connect(name, host.docker, timeout_s=30, login=host)
            opened.append(OpenHost(name, client, executor_for(name, host)))
        yield target.app.image.run, opened
    finally:
        for h in opened:
            h.client.close()
            h.executor.close()


def container_rows(target: Target) -> list[dict[str, Any]]:
    """Every container of the app on every host: host, name, version, digest, config
    version, status, health and whether nginx sends it traffic (``serving``)."""
    rows: list[dict[str, Any]] = []
    with open_hosts(target) as (run, hosts):
        for h in hosts:
            state = h.state(run, target.app_name, target.env_name)
            every = [c for c in [state.serving, *state.others] if c is not None]
            for c in sorted(every, key=lambda c: c.name):
                rows.append({
                    "host": h.name, "name": c.name, "version": c.version, "digest": c.digest,
                    "config_version": c.config_version, "status": c.status, "health": c.health,
                    "serving": c is state.serving,
                })  # fmt: skip
    return rows


def restart_serving(target: Target) -> dict[str, dict[str, Any]]:
    """Restart each host's serving container, one host after another, each probed before the
    next (host -> ``{"ok", "container", "message"}``)."""
    out: dict[str, dict[str, Any]] = {}
    with open_hosts(target) as (run, hosts):
        for h in hosts:
            s = h.state(run, target.app_name, target.env_name).serving
            if s is None:
                out[h.name] = {"ok": False, "container": None, "message": "no running container"}
                continue
            try:
                s.container.restart(timeout=run.stop_timeout_s)
                checked = engine.wait_ready(
                    s.container, probe_url(run, s.slot or 0), run.health_timeout_s
                )
                out[h.name] = {"ok": True, "container": s.name, "message": f"restarted; {checked}"}
            except Exception as e:
                message = f"restart failed: {str(e)[:300]}"
                out[h.name] = {"ok": False, "container": s.name, "message": message}
    return out
