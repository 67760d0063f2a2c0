"""Image promote: copy a ~200 MB, 8-layer image by digest from the test registry to the
production registry (two Debian docker-registry servers with htpasswd auth on loopback).

One result, ``image_promote``:

- ``quayside_s``: :func:`quayside.registry.copy_image` cold (the target registry wiped: no
  blob there), median of ``--repeat`` copies; digest checked at the target;
- ``skopeo_s``: ``skopeo copy --preserve-digests`` of the same digest, cold likewise;
  ``ratio_vs_skopeo`` = skopeo / Quayside;
- ``docker_s``: ``docker pull`` by digest + ``docker tag`` + ``docker push`` through a Docker
  Engine that holds none of the layers; ``ratio_vs_docker`` = docker / Quayside;
- ``warm_s``: the same copy again when every blob is already at the target;
- ``mount_s``: a copy between two repositories of the target registry (blobs mounted), against
  ``skopeo_same_registry_s``, skopeo's copy of the same.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness import Options, Timing, ToolResult, log, make_entry, measure, reproduce_command

NAME = "image_promote"
COMMAND = reproduce_command(NAME)
RESULTS = ("image_promote",)
REPOSITORY = "bench/shop"
TAG = "1.0.0"
#: six data layers of this size + two busybox layers: 8 layers, ~200 MB
DATA_LAYER_BYTES = 33 * 1000 * 1000
DATA_LAYERS = 6
GOAL_RATIO_SKOPEO, GOAL_RATIO_DOCKER, GOAL_WARM_S, GOAL_MOUNT_S = 1.2, 5.0, 0.3, 0.3

CONTEXT = {
    "image_promote": (
        f"Goals: at least {GOAL_RATIO_SKOPEO}x faster than skopeo copy and {GOAL_RATIO_DOCKER}x "
        f"faster than docker pull + tag + push (cold); warm copy under {GOAL_WARM_S} s; "
        f"same-registry copy (blob mount) under {GOAL_MOUNT_S} s."
    )
}


class Bench:
    """The Docker Engine, the two registries and the image, set up once."""

    def __init__(self, stack: ExitStack, work: Path) -> None:
        from testbed.docker_engine import DockerEngine, build_test_image, push_image
        from testbed.registry import start_pair

        self.work = work
        self.pair = start_pair(work / "registries")
        stack.callback(self.pair.stop)
        self.engine = DockerEngine()
        self.engine.start()
        stack.callback(self.engine.stop)
        self.docker_config = work / "docker-config"
        self.docker_config.mkdir()
        for server in self.pair:
            self.docker(
                "login", "--username", server.username, "--password-stdin", server.host,
                stdin=server.password,
            )  # fmt: skip
        source = self.pair.source
        client = self.engine.client()
        try:
            local = f"{source.host}/{REPOSITORY}"
            log(f"building the image ({DATA_LAYERS} x {DATA_LAYER_BYTES / 1e6:.0f} MB layers)")
            build_test_image(
                client, f"{local}:{TAG}", [DATA_LAYER_BYTES] * DATA_LAYERS, work / "context"
            )
            log("pushing it to the source registry")
            self.digest = push_image(client, local, TAG, source.username, source.password)
            self._forget_images(client)
        finally:
            client.close()
        manifest = self._manifest()
        self.layers = len(manifest.blobs) - 1
        self.image_bytes = sum(b.size for b in manifest.blobs)
        log(f"image {self.digest}: {self.layers} layers, {self.image_bytes / 1e6:.1f} MB")

    def _manifest(self) -> Any:
        from quayside.registry import RegistryClient

        with RegistryClient(self.pair.source.settings()) as client:
            return client.get_manifest(REPOSITORY, self.digest)

    def _forget_images(self, client: Any) -> None:
        """Remove every image and the build cache from the engine: a pull then downloads all."""
        for image in client.images.list():  # removing a top image removes its parents
            client.images.remove(image.id, force=True)
        client.api.prune_builds()

    def docker(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run(
            ["docker", "--config", str(self.docker_config), *args],
            check=True,
            capture_output=True,
            input=stdin.encode() if stdin is not None else None,
            env=self.engine.cli_env(),
            timeout=600,
        )

    def settings(self) -> tuple[Any, Any]:
        return self.pair.source.settings(), self.pair.target.settings()

    # -- the tools -------------------------------------------------------------------------

    def quayside(self, target_repository: str = REPOSITORY, same_registry: bool = False) -> Any:
        from quayside.registry import ImageLocation, copy_image

        source_settings, target_settings = self.settings()
        source = (
            ImageLocation(target_settings, REPOSITORY)
            if same_registry
            else ImageLocation(source_settings, REPOSITORY)
        )
        return copy_image(
            source, ImageLocation(target_settings, target_repository), self.digest, tag=TAG
        )

    def skopeo(self, target_repository: str = REPOSITORY, same_registry: bool = False) -> None:
        source, target = self.pair.source, self.pair.target
        origin = target if same_registry else source
        subprocess.run(
            [
                "skopeo", "copy", "--quiet", "--preserve-digests",
                "--src-tls-verify=false", "--dest-tls-verify=false",
                f"--src-creds={origin.username}:{origin.password}",
                f"--dest-creds={target.username}:{target.password}",
                f"docker://{origin.host}/{REPOSITORY}@{self.digest}",
                f"docker://{target.host}/{target_repository}:{TAG}",
            ],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip

    def docker_promote(self) -> str:
        """pull by digest, tag for the target, push; returns the digest the push reported."""
        source, target = self.pair.source, self.pair.target
        pulled = f"{source.host}/{REPOSITORY}@{self.digest}"
        tagged = f"{target.host}/{REPOSITORY}:{TAG}"
        self.docker("pull", "--quiet", pulled)
        self.docker("tag", pulled, tagged)
        out = subprocess.run(
            ["docker", "--config", str(self.docker_config), "push", tagged],
            check=True, capture_output=True, text=True, env=self.engine.cli_env(), timeout=600,
        )  # fmt: skip
        return next(
            (w for w in out.stdout.split() if w.startswith("sha256:")), "(no digest reported)"
        )

    # -- setups and checks -------------------------------------------------------------------

    def cold(self) -> None:
        """An empty target registry (and no image in the engine)."""
        self.pair.target.wipe()
        client = self.engine.client()
        try:
            self._forget_images(client)
        finally:
            client.close()

    def target_digest(self, repository: str = REPOSITORY) -> str | None:
        from quayside.registry import RegistryClient

        with RegistryClient(self.pair.target.settings()) as client:
            return client.manifest_digest(repository, TAG)

    def check(self, repository: str = REPOSITORY) -> None:
        found = self.target_digest(repository)
        if found != self.digest:
            raise RuntimeError(f"target {repository}:{TAG} is {found}, not {self.digest}")


def timed(label: str, fn: Callable[[], Any], repeat: int, setup: Callable[[], Any]) -> Timing:
    timing = measure(fn, repeat=repeat, setup=setup)
    log(f"{label}: median {timing.median_s:.3f} s ({', '.join(f'{r:.3f}' for r in timing.runs_s)})")
    return timing


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Set up the engine, the registries and the image once, then time each tool cold, then
    Quayside warm and by mount."""
    repeat = max(1, options.repeat)
    options.work_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="image-promote-", dir=options.work_dir))
        if not options.keep:  # ~600 MB of registry storage and build context
            stack.callback(shutil.rmtree, work, True)
        bench = Bench(stack, work)

        def quayside_cold() -> Any:
            result = bench.quayside()
            bench.check()
            return result

        quayside = timed("quayside cold", quayside_cold, repeat, bench.cold)
        results = quayside.outputs
        uploaded = [len(r.uploaded) for r in results]

        def skopeo_cold() -> None:
            bench.skopeo()

        skopeo = None
        if "skopeo" not in options.skip:
            skopeo = timed("skopeo copy cold", skopeo_cold, repeat, bench.cold)
            bench.check()

        docker = None
        docker_digests: list[str] = []
        if "docker" not in options.skip:
            docker = timed("docker pull+tag+push cold", bench.docker_promote, repeat, bench.cold)
            docker_digests = list(docker.outputs)

        bench.cold()
        bench.quayside()
        warm = timed("quayside warm", bench.quayside, repeat, lambda: None)
        warm_uploads = [len(r.uploaded) for r in warm.outputs]

        names: list[str] = []

        def new_repository() -> None:
            names.append(f"bench/promoted-{secrets.token_hex(4)}")

        mount = timed(
            "quayside same-registry (mount)",
            lambda: bench.quayside(names[-1], same_registry=True),
            repeat,
            new_repository,
        )
        for name in names:
            bench.check(name)
        mounted = [len(r.mounted) for r in mount.outputs]
        skopeo_same = timed(
            "skopeo same-registry",
            lambda: bench.skopeo(names[-1], same_registry=True),
            repeat,
            new_repository,
        )

    tools = [
        ToolResult("quayside", "Quayside copy_image (OCI distribution API)",
                   "login to both registries, read the manifest, HEAD every blob at the target, "
                   "stream the missing blobs (chunked upload, parallel), put the manifest and "
                   "the tag, verify the target's digest", quayside),
        ToolResult("skopeo", "skopeo copy --preserve-digests (1.9.3)",
                   "the same copy by digest with skopeo, both registries plain HTTP with "
                   "credentials", skopeo,
                   None if skopeo else "skipped (--skip skopeo)"),
        ToolResult("docker", "docker pull + tag + push (Docker Engine 20.10)",
                   "pull by digest into an engine holding none of the layers (download, "
                   "unpack), tag for the target, push (recompress, upload)", docker,
                   None if docker else "skipped (--skip docker)"),
    ]  # fmt: skip
    q = quayside.median_s
    ratio_skopeo = skopeo.median_s / q if skopeo else None
    ratio_docker = docker.median_s / q if docker else None
    entry = make_entry(
        tools,
        title=f"Image promote: a {bench.image_bytes / 1e6:.0f} MB, {bench.layers}-layer image "
        "between two registries",
        description="Copy one image by digest from the test registry to the production "
        "registry (two docker-registry 2.8 servers, htpasswd auth, loopback): Quayside's "
        "copy_image against skopeo copy and against docker pull + tag + push, each with no "
        "blob at the target; Quayside again with every blob present (warm), and between two "
        "repositories of one registry (blob mount) against skopeo's copy of the same.",
        command=COMMAND,
        repeat=repeat,
        extra={
            "image_bytes": bench.image_bytes,
            "layers": bench.layers,
            "warm_s": round(warm.median_s, 3),
            "warm_runs_s": [round(v, 3) for v in warm.runs_s],
            "mount_s": round(mount.median_s, 3),
            "mount_runs_s": [round(v, 3) for v in mount.runs_s],
            "skopeo_same_registry_s": round(skopeo_same.median_s, 3),
            "blobs_uploaded_cold": uploaded,
            "blobs_uploaded_warm": warm_uploads,
            "blobs_mounted": mounted,
            "docker_push_digest_equal": (
                all(d == bench.digest for d in docker_digests) if docker_digests else None
            ),
            "goal_ratio_vs_skopeo": GOAL_RATIO_SKOPEO,
            "goal_ratio_vs_docker": GOAL_RATIO_DOCKER,
            "goal_warm_s": GOAL_WARM_S,
            "goal_mount_s": GOAL_MOUNT_S,
            "meets_goal": bool(
                ratio_skopeo is not None
                and ratio_skopeo >= GOAL_RATIO_SKOPEO
                and ratio_docker is not None
                and ratio_docker >= GOAL_RATIO_DOCKER
                and warm.median_s < GOAL_WARM_S
                and mount.median_s < GOAL_MOUNT_S
            ),
        },
        notes=[
            "Cold: the target registry is stopped, its storage removed and started again "
            "before each timed copy (and the engine holds no image), outside the timing.",
            "Every Quayside and skopeo copy is checked afterwards: the target resolves the "
            "tag to the source's digest.",
            f"The image: FROM scratch, busybox-static twice, {DATA_LAYERS} layers of "
            f"{DATA_LAYER_BYTES / 1e6:.0f} MB random bytes (incompressible), built and pushed "
            "with the benchmark's own Docker Engine.",
            f"Machine: {os.cpu_count()} cores; the registries, the client and the engine share "
            "them.",
        ],
    )
    return {"image_promote": entry}
