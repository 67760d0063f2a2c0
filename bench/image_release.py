"""Image release and rollback on a Docker host (the benchmark's own Docker Engine, a registry
with htpasswd auth and an nginx in front, all on loopback), with a load loop of at least
100 requests/s through nginx the whole time.

One result, ``image_release``:

- ``release_s`` (= ``quayside_s``): v1 serving, release v2 with its config - Quayside's host
  code (:func:`quayside.images.image_release_host.release_on_host`: new container beside the
  old one, checked by health probe and artifact checksum, nginx upstream switched through
  config publish's publish code, old stopped; then :func:`finish_on_host` removes the old one)
  with the image already on the host; median of ``--repeat``;
- ``rollback_s``: v2 serving, the same call with v1's digest and v1's config;
- ``docker_s``: what people script without Quayside on the same host - ``docker rm -f`` the
  old container, ``docker run`` the new one on the same address - under the same load;
- ``requests_sent``, ``failed_requests``: the load loop's totals during Quayside's releases
  and rollbacks; ``docker_failed_requests`` during the docker replacements.

The figures are the host side of the ``image-release`` flow: the Prefect run and the ledger
writes around it are not included.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness import Options, ToolResult, log, make_entry, measure, reproduce_command

NAME = "image_release"
COMMAND = reproduce_command(NAME)
RESULTS = ("image_release",)
REPOSITORY = "bench/app"
RATE = 150
GOAL_RELEASE_S, GOAL_ROLLBACK_S = 5.0, 5.0
CONTEXT = {
    "image_release": (
        f"Goals: the new container serving within {GOAL_RELEASE_S:g} s (image present), "
        f"rollback to the previous digest + config under {GOAL_ROLLBACK_S:g} s, zero failed "
        f"requests during both under a load loop of at least 100 requests/s ({RATE} here)."
    )
}


class Bench:
    """The engine, the registry, the two images and the nginx, set up once."""

    def __init__(self, stack: ExitStack, work: Path) -> None:
        from quayside.inventory.image_models import ImageRun, ImageTraffic
        from testbed.docker_engine import DockerEngine, push_image
        from testbed.image_app import APP_ADDRESS, FrontNginx, build_app_image, free_tcp_port
        from testbed.registry import start_pair

        self.work = work
        self.pair = start_pair(work / "registries")
        stack.callback(self.pair.stop)
        self.engine = DockerEngine()
        self.engine.start()
        stack.callback(self.engine.stop)
        self.client = self.engine.client()
        stack.callback(self.client.close)
        registry = self.pair.source
        local = f"{registry.host}/{REPOSITORY}"
        self.images: dict[str, tuple[str, str, str]] = {}
        for version in ("v1", "v2"):
            war = f"war {version}".encode()
            build_app_image(self.client, f"{local}:{version}", version, work / version, war=war)
            digest = push_image(self.client, local, version, registry.username, registry.password)
            self.images[version] = (digest, f"{local}@{digest}", hashlib.sha256(war).hexdigest())
        self.front = FrontNginx(work / "front", shutil.which("nginx") or "/usr/sbin/nginx")
        self.front.start()
        stack.callback(self.front.stop)
        ports: list[int] = []
        while len(ports) < 3:
            port = free_tcp_port(APP_ADDRESS)
            ports += [] if port in ports else [port]
        self.docker_slot = f"{APP_ADDRESS}:{ports[2]}"
        self.run = ImageRun(
            network="host",
            init=True,
            slots=(f"{APP_ADDRESS}:{ports[0]}", f"{APP_ADDRESS}:{ports[1]}"),
            health_path="/health",
            config_service="app",
            config_mount="/www/config",
            config_dir=str(work / "configs" / "{host}"),
            traffic=ImageTraffic(**self.front.traffic(drain_s=0.3)),
        )
        self.auth = {"username": registry.username, "password": registry.password}
        self.stamp = 0
        stack.callback(self.remove_all)

    def remove_all(self) -> None:
        for c in self.client.containers.list(all=True, filters={"label": "quayside.app=bench"}):
            c.remove(force=True)
        for c in self.client.containers.list(all=True, filters={"name": "bench-docker"}):
            c.remove(force=True)

    def job(self, version: str) -> Any:
        from quayside.images.image_release_host import ImageJob

        digest, image, war = self.images[version]
        config = f"config of {version}\n"
        self.stamp += 1
        return ImageJob(
            "docker-1", "127.0.0.81", self.run, "bench", "test", version, digest, image,
            hashlib.sha256(config.encode()).hexdigest(), {"app.properties": int(version[1:])},
            (("app.properties", config),), "/app/app.war", war, self.auth,
            f"20260101T{self.stamp:06d}Z",
        )  # fmt: skip

    def release(self, version: str) -> str:
        from quayside.executors.factory import executor_for
        from quayside.images.image_release_host import finish_on_host, release_on_host
        from quayside.inventory.models import Host

        executor = executor_for("docker-1", Host(address="127.0.0.81", transport="local"))
        try:
            job = self.job(version)
            report, switched = release_on_host(self.client, executor, job)
            if report.status == "no_change":
                return report.message
            if report.status != "succeeded" or switched is None:
                raise RuntimeError(f"release of {version}: {report.status}: {report.message}")
            finish_on_host(self.client, executor, job, switched, protected=set())
        finally:
            executor.close()
        served = self.front.get()
        if served != version:
            raise RuntimeError(f"nginx serves {served!r} after the release of {version}")
        return report.message

    def docker_replace(self, version: str) -> None:
        """``docker rm -f`` the old container, ``docker run`` the new one on the same slot,
        wait until it answers (what a script without Quayside does)."""
        import urllib.request

        _, image, _ = self.images[version]
        env = self.engine.cli_env()
        subprocess.run(["docker", "rm", "-f", "bench-docker"], env=env, capture_output=True)
        subprocess.run(
            ["docker", "run", "-d", "--name", "bench-docker", "--network", "host",
             "-e", f"QUAYSIDE_LISTEN={self.docker_slot}", image],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.docker_slot}/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("the docker-run container did not answer")

    def point_nginx_at_docker(self) -> None:
        """Upstream to the docker slot (outside the timing)."""
        import os
        import signal

        text = f"upstream app {{\n    server {self.docker_slot};\n}}\n"
        (self.front.conf / "upstream.conf").write_text(text)
        pid = int((self.front.base / "nginx.pid").read_text().strip())
        os.kill(pid, signal.SIGHUP)
        time.sleep(1)


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Release v2 / roll back to v1 under load with Quayside, then docker rm + run likewise."""
    from testbed.image_app import LoadLoop

    repeat = max(1, options.repeat)
    options.work_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="image-release-", dir=options.work_dir))
        work.chmod(0o755)
        if not options.keep:
            stack.callback(shutil.rmtree, work, True)
        bench = Bench(stack, work)
        bench.release("v1")
        load = stack.enter_context(LoadLoop(bench.front.url, rate=RATE))
        release = measure(lambda: bench.release("v2"), repeat, lambda: bench.release("v1"))
        log(f"release: median {release.median_s:.3f} s ({release.runs_s})")
        rollback = measure(lambda: bench.release("v1"), repeat, lambda: bench.release("v2"))
        log(f"rollback: median {rollback.median_s:.3f} s ({rollback.runs_s})")
        time.sleep(1)
        sent, failed, errors = load.sent, load.failed, list(load.errors)
        load.__exit__(None, None, None)
        log(f"load loop: {sent} requests, {failed} failed")
        docker = None
        docker_failed = None
        if "docker" not in options.skip:
            bench.docker_replace("v1")
            bench.point_nginx_at_docker()
            with LoadLoop(bench.front.url, rate=RATE) as docker_load:
                docker = measure(lambda: bench.docker_replace("v2"), repeat, lambda: None)
                time.sleep(0.5)
            docker_failed = docker_load.failed
            log(f"docker rm + run: median {docker.median_s:.3f} s, {docker_failed} failed "
                f"of {docker_load.sent}")  # fmt: skip
    tools = [
        ToolResult("quayside", "Quayside image release (host side)",
                   "read the host, start the new container beside the old one, health probe, "
                   "artifact sha256 through the engine, write + nginx -t + swap + reload + "
                   "verify the upstream, drain 0.3 s, stop and remove the old one", release),
        ToolResult("docker", "docker rm -f + docker run (same address)",
                   "remove the old container, run the new one, wait until it answers; "
                   "requests fail while nothing listens", docker,
                   None if docker else "skipped (--skip docker)"),
    ]  # fmt: skip
    entry = make_entry(
        tools,
        title="Image release and rollback on a Docker host under load",
        description=f"Release v2 over v1 and roll back to v1 (digest + config) with "
        f"Quayside's image release host code, under a load loop of {RATE} requests/s through "
        "nginx; against docker rm -f + docker run of the same image under the same load.",
        command=COMMAND,
        repeat=repeat,
        extra={
            "release_s": round(release.median_s, 3),
            "rollback_s": round(rollback.median_s, 3),
            "rollback_runs_s": [round(v, 3) for v in rollback.runs_s],
            "requests_sent": sent,
            "failed_requests": failed,
            "failed_examples": errors[:5],
            "docker_failed_requests": docker_failed,
            "load_rate_per_s": RATE,
            "goal_release_s": GOAL_RELEASE_S,
            "goal_rollback_s": GOAL_ROLLBACK_S,
            "meets_goal": bool(
                release.median_s < GOAL_RELEASE_S
                and rollback.median_s < GOAL_ROLLBACK_S
                and failed == 0
                and sent >= 100
            ),
        },
        notes=[
            "The image is on the host before each timed release (pulled once): the goal is "
            "for a present image.",
            "The times include the 0.3 s drain (traffic.drain_s) before the old container "
            "stops, and the finish (old container and its config directory removed).",
            "The Prefect run, the approval and the ledger writes of the image-release flow "
            "are not included.",
        ],
    )
    return {"image_release": entry}
