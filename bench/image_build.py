"""Image build: an image app's source built on a Docker Engine and pushed to an htpasswd
registry (Debian docker-registry on loopback), cold and after a one-file change.

One result, ``image_build``:

- ``cold_s`` (also ``quayside_s``): :func:`quayside.images.build_image.build_and_push` on an
  engine that holds no image and no build cache, pushing to an empty registry: registry
  check, build (busybox, ~40 MB of dependencies, a RUN step hashing them, the war, the static
  files), the war's sha256 read from the image, push, digest read back from the registry;
  median of ``--repeat`` builds;
- ``warm_s``: the same app after a one-file change (``static/index.html``), built on the warm
  engine and pushed to the same repository: every step before the changed file comes from
  the layer cache, only the changed layer is uploaded.

The source is exported from the app's git mirror before each timed build (not timed), as the
flow does. The flow itself adds the ledger and the run log around the same call.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness import Options, Timing, ToolResult, log, make_entry, reproduce_command

NAME = "image_build"
COMMAND = reproduce_command(NAME)
RESULTS = ("image_build",)
DEPENDENCY_FILES, DEPENDENCY_BYTES = 4, 10 * 1000 * 1000
WAR_BYTES = 5 * 1000 * 1000
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
COPY deps/ /app/deps/
RUN busybox sha256sum /app/deps/* > /app/deps.sha256
COPY app.war /app/app.war
COPY static/ /app/static/
CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/app/static"]
"""

CONTEXT = {
    "image_build": (
        "Cold: no image, no build cache, empty registry. Warm: one file changed, every step "
        "before it from the layer cache, one layer uploaded."
    )
}


class Bench:
    """The engine, the registry and the app's repository, set up once."""

    def __init__(self, stack: ExitStack, work: Path) -> None:
        from quayside.images.engine_build import open_engine
        from testbed.docker_engine import DockerEngine, busybox_path
        from testbed.registry import start_pair
        from testbed.release_fixtures import Repo

        self.work = work
        self.pair = start_pair(work / "registries")
        stack.callback(self.pair.stop)
        self.registry = self.pair.source
        self.engine = DockerEngine()
        self.engine.start()
        stack.callback(self.engine.stop)
        self.api = open_engine(self.engine.url)
        stack.callback(self.api.close)
        busybox = busybox_path()
        if busybox is None:
            raise RuntimeError("no static busybox: apt-get install busybox-static")
        self.repo = Repo(work / "shop")
        shutil.copy(busybox, self.repo.path / "busybox")
        files: dict[str, str | bytes | None] = {
            f"deps/lib{i}.jar": os.urandom(DEPENDENCY_BYTES) for i in range(DEPENDENCY_FILES)
        }
        files.update(
            {"Dockerfile": DOCKERFILE, "app.war": os.urandom(WAR_BYTES), "static/index.html": "0"}
        )
        self.repo.commit(files, tag="v1.0.0")
        self.changes = 0

    def forget_everything(self) -> None:
        """An engine with no image and no build cache, a registry with no blob."""
        from docker.errors import APIError

        for _ in range(10):  # children first: a parent goes with them or in a later pass
            images = self.api.images(all=True)
            if not images:
                break
            for image in images:
                try:
                    self.api.remove_image(image["Id"], force=True)
                except APIError:  # gone with a child, or still has one
                    pass
        self.api.prune_builds()
        self.registry.wipe()

    def change_one_file(self) -> None:
        self.changes += 1
        self.repo.commit({"static/index.html": f"{self.changes}\n"})

    def export(self) -> tuple[str, Path]:
        from quayside.source.mirror import GitMirror

        mirror = GitMirror(self.work / "mirrors", str(self.repo.path))
        mirror.sync()
        sha = mirror.resolve("main")
        dest = Path(tempfile.mkdtemp(prefix="export-", dir=self.work)) / "source"
        return sha, mirror.export(sha, dest)

    def build(self, repository: str, version: str) -> tuple[float, Any]:
        """Export (untimed), then time one build and push."""
        from quayside.images.build_image import BuildSpec, build_and_push
        from quayside.inventory.image_models import ImageBuild

        sha, source = self.export()
        spec = BuildSpec.make(
            app="shop",
            ref="main",
            commit_sha=sha,
            source_url=str(self.repo.path),
            version=version,
            repository=repository,
            build=ImageBuild(artifact_path="/app/app.war"),
            registry=self.registry.settings(),
        )
        lines: list[str] = []
        started = time.perf_counter()
        result = build_and_push(spec, source, self.api, lines.append)
        elapsed = time.perf_counter() - started
        shutil.rmtree(source.parent, ignore_errors=True)
        return elapsed, result


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Per repetition: a cold build into an empty registry, then a one-file change built warm."""
    repeat = max(1, options.repeat)
    options.work_dir.mkdir(parents=True, exist_ok=True)
    cold: list[float] = []
    warm: list[float] = []
    cached: list[str] = []
    steps = 0
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="image-build-", dir=options.work_dir))
        if not options.keep:
            stack.callback(shutil.rmtree, work, True)
        bench = Bench(stack, work)
        for n in range(repeat):
            repository = f"bench/shop-{secrets.token_hex(3)}"
            bench.forget_everything()
            bench.change_one_file()
            seconds, result = bench.build(repository, f"1.{n}.0")
            cold.append(seconds)
            log(f"cold build + push: {seconds:.2f} s ({len(result.cached_steps)} cached steps)")
            bench.change_one_file()
            seconds, result = bench.build(repository, f"1.{n}.1")
            warm.append(seconds)
            cached, steps = result.cached_steps, len(result.steps)
            log(f"warm build + push: {seconds:.2f} s ({len(cached)} of {steps} steps cached)")
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    tools = [
        ToolResult("quayside", "Quayside image build, cold (no image, no cache, empty registry)",
                   "registry check, build (Engine API, streamed), the war's sha256 from the "
                   "image, push, digest from the registry",
                   Timing(cold_s, cold)),
    ]  # fmt: skip
    entry = make_entry(
        tools,
        title="Image build: cold vs one-file change with a warm layer cache",
        description=f"An image app ({DEPENDENCY_FILES} x {DEPENDENCY_BYTES / 1e6:.0f} MB of "
        f"dependencies hashed in a RUN step, a {WAR_BYTES / 1e6:.0f} MB war, static files) "
        "built with the Docker Engine API and pushed to a docker-registry with htpasswd auth: "
        "cold, then after changing one static file.",
        command=COMMAND,
        repeat=repeat,
        extra={
            "cold_s": round(cold_s, 3),
            "warm_s": round(warm_s, 3),
            "warm_runs_s": [round(v, 3) for v in warm],
            "warm_vs_cold": round(cold_s / warm_s, 2) if warm_s else None,
            "warm_cached_steps": len(cached),
            "steps": steps,
        },
        notes=[f"warm build: {len(cached)} of {steps} steps from the layer cache"],
    )
    return {NAME: entry}
