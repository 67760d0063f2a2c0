"""One host's part of an image release: start the new container beside the serving one,
check it, switch nginx's upstream to it, and only then stop the old one - or, on any failure,
remove the new one and leave the old one serving (the upstream restored by the publish code).

Steps (``release_on_host``):

1. read the host: the app's containers (labels) and the slot nginx's upstream names;
   the serving container has the same digest and config version: "no change";
2. pull the image by digest (skipped when the engine has it);
3. write the rendered config files into ``<config_dir>/<container name>`` (mounted
   read-only at ``run.config_mount``);
4. create and start ``<app>-<env>-<version>-<slot>`` on the slot the serving one does not use;
5. check it: running (healthy, where the image has a health check), an HTTP probe on its
   slot, and the build's artifact checksum inside it where one was recorded;
6. switch: the upstream file published through :mod:`quayside.config.host_publish`
   (stage, ``nginx -t``, swap, reload, verify through nginx; restored on failure), then
   nginx's answers must name the new container's slot (``X-Quayside-Upstream``: an old
   container still answering fails the switch, and the upstream is restored);
7. wait ``traffic.drain_s`` for nginx's old workers, then stop the old container (it is
   removed by :func:`finish_on_host` when the release is through, so a restore past the
   failure threshold can start it again).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quayside.config.host_publish import HostJob
from quayside.errors import QuaysideError
from quayside.executors.base import Executor
from quayside.images import containers_docker as engine
from quayside.images.containers_spec import (
    ContainerSpec,
    config_host_dir,
    create_arguments,
    other_slot,
    probe_url,
)
from quayside.images.errors import TrafficNotRestored
from quayside.images.traffic_upstream import (
    read_upstream,
    restore_upstream,
    slot_in_upstream,
    switch_upstream,
    upstream_job,
    upstream_text,
)
from quayside.inventory.image_models import ImageRun
from quayside.release.host_report import HostReport, failure_message


@dataclass(frozen=True)
class ImageJob:
    """Everything one host's image release needs."""

    host: str
    address: str
    run: ImageRun
    app: str
    env: str
    version: str
    digest: str
    image: str
    """``registry-host/repository@sha256:...``"""
    config_version: str = "none"
    config_files: Mapping[str, int] = field(default_factory=dict)
    rendered: Sequence[tuple[str, str]] = field(default=(), repr=False)
    """The rendered config files (filename, content): secrets included, hosts only."""
    artifact_path: str | None = None
    artifact_sha256: str | None = None
    auth: dict[str, str] | None = field(default=None, repr=False)
    version_id: str = "image"
    """Names the upstream file's version directory on the host (unique per release)."""

    def spec(self, slot: int) -> ContainerSpec:
        return ContainerSpec(
            self.app, self.env, self.version, self.digest, self.image, slot,
            self.config_version, dict(self.config_files),
        )  # fmt: skip


@dataclass
class HostState:
    """What a host serves before the release: the serving container (the one the upstream
    names, else the newest running one) and the upstream's live facts."""

    serving: engine.Running | None
    others: list[engine.Running]
    upstream_slot: str | None


@dataclass
class Switched:
    """What :func:`finish_on_host` and :func:`restore_on_host` need of a switched host."""

    new: str
    old: str | None
    upstream: HostJob | None


def read_state(
    client: Any, executor: Executor | None, run: ImageRun, app: str, env: str
) -> HostState:
    """The app's containers on the host and the slot nginx sends traffic to."""
    containers = engine.app_containers(client, app, env)
    upstream_slot = None
    if run.traffic is not None and executor is not None:
        facts = read_upstream(executor, run.traffic)
        upstream_slot = slot_in_upstream(facts.files.get(run.traffic.upstream_file))
    serving = None
    for c in containers:
        if c.slot is not None and run.slots[c.slot] == upstream_slot and c.running:
            serving = c
    if serving is None:
        running = [c for c in containers if c.running]
        serving = running[-1] if running else None
    return HostState(serving, [c for c in containers if c is not serving], upstream_slot)


def write_config_argv(directory: str) -> list[str]:
    """Replace ``directory`` with the files of the tar on stdin (world-readable: the
    container's user may be anyone)."""
    script = 'rm -rf "$0" && mkdir -p "$0" && tar -x -o -C "$0" && chmod -R a+rX "$0"'
    return ["sh", "-c", script, directory]


def remove_dir_argv(directory: str) -> list[str]:
    return ["rm", "-rf", "--", directory]


def config_tar(files: Sequence[tuple[str, str]]) -> bytes:
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files:
            data = content.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def release_on_host(
    client: Any, executor: Executor | None, job: ImageJob
) -> tuple[HostReport, Switched | None]:
    """Start, check and switch to ``job``'s container on one host (see the module).

    Returns:
        The host's report (``succeeded`` with ``switched``; ``no_change``; or ``failed`` with
        the step, the new container removed and the old one serving) and, for a switched
        host, what a restore or the finish needs.
    """
    started = time.monotonic()
    state = read_state(client, executor, job.run, job.app, job.env)
    serving = state.serving
    if (
        serving is not None
        and serving.digest == job.digest
        and serving.config_version == job.config_version
        and (job.run.traffic is None or state.upstream_slot == job.run.slots[serving.slot or 0])
    ):
        return HostReport(job.host, "no_change", "plan", f"{serving.name} serves it"), None
    slot = other_slot(serving.slot if serving is not None else None)
    spec = job.spec(slot)
    for c in state.others:  # a leftover on the slot (an old stopped one, a failed new one)
        if c.slot == slot or c.name == spec.name:
            engine.remove(c.container)
    step, new, config_dir = "pull", None, None
    checked: list[str] = []
    try:
        pulled = engine.pull(client, spec, job.auth)
        if job.run.config_service and job.run.config_mount:
            step, config_dir = "config", config_host_dir(job.run, job.host, spec)
            if executor is None:
                raise QuaysideError("config files need the host's executor")
            executor.run(write_config_argv(config_dir), stdin=config_tar(job.rendered), timeout=60)
        step = "start"
        new = engine.start(client, create_arguments(job.run, spec, job.host))
        step = "check"
        checked.append(engine.wait_ready(new, probe_url(job.run, slot), job.run.health_timeout_s))
        if job.artifact_path and job.artifact_sha256:
            checked.append(engine.check_artifact(new, job.artifact_path, job.artifact_sha256))
        upstream = None
        if job.run.traffic is not None:
            step = "switch"
            assert executor is not None
            facts = read_upstream(executor, job.run.traffic)
            upstream = upstream_job(
                host=job.host, address=job.address, app=job.app, env=job.env,
                traffic=job.run.traffic, facts=facts,
                text=upstream_text(job.run.traffic, job.run.slots[slot],
                                   f"{job.app}/{job.env} {job.version} {job.digest} "
                                   f"config {job.config_version} ({spec.name})"),
                version_id=f"{job.version_id}-{spec.name}",
            )  # fmt: skip
            report = switch_upstream(executor, upstream, job.run.slots[slot])
            if not report.ok and "RESTORE FAILED" in report.message:
                raise TrafficNotRestored(f"traffic switch: {report.message}")
            if not report.ok:
                raise QuaysideError(f"traffic switch: {report.message}")
            checked.append(f"nginx answers from {job.run.slots[slot]}")
            time.sleep(job.run.traffic.drain_s)
        if serving is not None:
            engine.stop(serving.container, job.run.stop_timeout_s)
    except Exception as e:
        why = failure_message(e, job.host)
        if isinstance(e, TrafficNotRestored):  # nginx may still send the new one traffic
            return HostReport(
                job.host, "failed", step,
                f"{step}: {why}; {spec.name} left running (nginx may send it traffic)",
                duration_s=time.monotonic() - started,
            ), None  # fmt: skip
        if new is not None:
            engine.remove(new)
        if config_dir is not None and executor is not None:
            executor.run(remove_dir_argv(config_dir), timeout=60, check=False)
        kept = f"{serving.name} keeps serving" if serving is not None else "nothing was serving"
        return HostReport(
            job.host, "failed", step, f"{step}: {why}; {spec.name} removed, {kept}",
            duration_s=time.monotonic() - started,
        ), None  # fmt: skip
    old = serving.name if serving is not None else None
    message = (
        f"{spec.name} serves {job.version} ({job.digest[:19]}, config {job.config_version[:12]})"
        f"{'; pulled' if pulled else ''}; checked {'; '.join(checked)}"
        + (f"; {old} stopped" if old else "")
    )
    report = HostReport(
        job.host, "succeeded", "switch", message, previous=old, switched=True,
        duration_s=time.monotonic() - started,
    )  # fmt: skip
    return report, Switched(spec.name, old, upstream)


def restore_on_host(
    client: Any, executor: Executor | None, job: ImageJob, switched: Switched
) -> str:
    """Start the old container again, send traffic back to it, and remove the new one once
    nginx's old workers are drained (``traffic.drain_s``).

    Raises:
        QuaysideError: the old container does not answer again, or the upstream could not be
            restored (the new one is left running then, serving).
    """
    if switched.old is None:
        raise QuaysideError(f"{job.host}: nothing served before {switched.new}; left running")
    old = client.containers.get(switched.old)
    old.start()
    slot = int(old.labels.get("quayside.slot") == "b")
    engine.wait_ready(old, probe_url(job.run, slot), job.run.health_timeout_s)
    note = ""
    if switched.upstream is not None and executor is not None:
        note = restore_upstream(executor, switched.upstream, job.run.slots[slot])
        if note.startswith("RESTORE FAILED"):
            raise QuaysideError(f"{job.host}: {note}")
        # nginx's old workers still send their requests to the new container for a moment,
        # as after the switch: it goes once they are drained
        if job.run.traffic is not None:
            time.sleep(job.run.traffic.drain_s)
    engine.remove(client.containers.get(switched.new))
    return f"{switched.old} serves again; {note}".rstrip("; ")


def finish_on_host(
    client: Any,
    executor: Executor | None,
    job: ImageJob,
    switched: Switched,
    protected: Collection[str],
) -> str:
    """After a release went through: remove the old container and its config directory, and
    prune the app's images beyond ``keep_images`` (never a ``protected`` digest)."""
    done = []
    if switched.old is not None:
        try:
            engine.remove(client.containers.get(switched.old))
            done.append(f"{switched.old} removed")
        except Exception as e:
            done.append(f"{switched.old} not removed ({type(e).__name__})")
        if job.run.config_service and job.run.config_mount and executor is not None:
            directory = f"{job.run.config_dir.replace('{host}', job.host)}/{switched.old}"
            executor.run(remove_dir_argv(directory), timeout=60, check=False)
    in_use = {c.digest for c in engine.app_containers(client, job.app, job.env)}
    removed = engine.prune_images(
        client, job.image.split("@", 1)[0], job.run.keep_images, set(protected), in_use
    )
    if removed:
        done.append(f"pruned {len(removed)} image(s)")
    return "; ".join(done)
