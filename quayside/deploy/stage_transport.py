"""The three ways a host's stage travels, in one or two round trips:

    inline    changes up to ``inline_max_bytes``: a tar built in memory (shared by hosts with
              the same change), the manifest as a patch of the host's; one round trip
    streamed  larger changes with a scratch dir: a tar file written once by GNU tar, streamed
              through the executor (OpenSSH for SSH hosts); one round trip
    rsync     larger changes without a scratch dir, or a host whose release has no manifest
              (``--link-dest`` to its current release): prepare, rsync, seal; 2 round trips
              and rsync

A switching stage's payload is followed by the go (``scripts.commit_line``), written by this
process: a controller that dies mid-transfer never lets a host switch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from quayside.commands.release import release_dir
from quayside.deploy import scripts
from quayside.deploy.host_plan import FactsDiffer
from quayside.deploy.payload_tar import build_tar, build_tar_file, manifest_patch
from quayside.deploy.release_spec import ReleaseSpec
from quayside.deploy.round_trips import RoundTrips
from quayside.deploy.rsync_upload import rsync_files
from quayside.errors import CommandFailed
from quayside.plans.release import CreateRelease, PrepareFromPrevious, ReleasePlan, Upload
from quayside.release import stopping


@dataclass(frozen=True)
class Staged:
    """What a stage printed, and what it sent besides its command lines."""

    output: str
    bytes_sent: int
    files_sent: int


@dataclass(frozen=True)
class StageJob:
    """One host's stage, as its plan says: what to copy, send, link, switch and prune."""

    trips: RoundTrips
    spec: ReleaseSpec
    root: str
    plan: ReleasePlan
    #: ``(known manifest sha256, expected facts)`` for a guarded stage
    guard: tuple[str, str] | None = None

    @property
    def upload(self) -> Upload | None:
        return next((s for s in self.plan.steps if isinstance(s, Upload)), None)

    @property
    def files(self) -> tuple[str, ...]:
        return self.upload.files if self.upload is not None else ()

    @property
    def switch_now(self) -> bool:
        """Switch in the stage round trip itself (no pre-switch hook has to run first)."""
        return not self.spec.hooks.pre_switch

    def request(self) -> scripts.StageRequest:
        """The stage request every transport starts from."""
        prepare = next((s for s in self.plan.steps if isinstance(s, PrepareFromPrevious)), None)
        if prepare is None:
            assert any(isinstance(s, CreateRelease) for s in self.plan.steps)
        switch = self.switch_now
        return scripts.StageRequest(
            self.root,
            self.spec.release_id,
            mode="prev" if prepare is not None else "fresh",
            prev=self.plan.facts.current,
            remove=prepare.remove if prepare is not None else (),
            shared=sorted(self.spec.shared_paths),
            switch=switch,
            prune=self.plan.prune if switch else (),
            guard=self.guard,
            facts_after=self.spec.manifest_sha256() if switch else None,
            prepare_next=True,
            next_delay_s=self.spec.next_delay_s,
        )

    def switch_request(self) -> scripts.StageRequest:
        """The switch after the pre-switch hooks, for a stage that did not switch."""
        return scripts.StageRequest(
            self.root,
            self.spec.release_id,
            mode="keep",
            switch=True,
            prune=self.plan.prune,
            facts_after=self.spec.manifest_sha256(),
            prepare_next=True,
            next_delay_s=self.spec.next_delay_s,
        )


def stage(job: StageJob, on_step: Callable[[str], None]) -> Staged:
    """Stage the release on the host the way its size and the spec allow; ``on_step`` hears
    of the upload step of an rsync stage.

    Raises:
        FactsDiffer: a guarded stage found other facts (nothing was touched).
        QuaysideError: the stage failed (what it left is removed by the host or the caller).
    """
    size = job.upload.bytes if job.upload is not None else 0
    link_dest = job.upload.link_dest if job.upload is not None else None
    if link_dest is None and size <= job.spec.inline_max_bytes:
        return stage_inline(job)
    if link_dest is None and job.spec.scratch_dir is not None:
        return stage_streamed(job, job.spec.scratch_dir)
    return stage_by_rsync(job, link_dest, on_step)


def stage_inline(job: StageJob) -> Staged:
    """One round trip with an in-memory tar; the manifest travels as a patch of the host's
    current one (an argument when small), or whole when the host's copy differs."""
    spec, files = job.spec, job.files
    manifest_json = spec.manifest_json()
    base = job.request()
    old_manifest = job.plan.facts.current_manifest
    if base.mode == "prev" and old_manifest is not None:
        head, tail, digest, middle = spec.memo.get(
            ("patch", old_manifest.digest()),
            lambda: manifest_patch(old_manifest.to_json(), manifest_json),
        )
        request = replace(base, manifest_patch=(head, tail, digest))
        if scripts.fits_argument(middle):  # the tar then holds only the files
            request = replace(request, patch_middle=middle)
            data = spec.memo.get(
                ("tar", files, None), lambda: build_tar(spec.payload_dir, files, None)
            )
        else:
            data = spec.memo.get(
                ("tar-patch", files, digest, head, tail),
                lambda: build_tar(
                    spec.payload_dir,
                    files,
                    manifest_json,
                    manifest_name=scripts.MANIFEST_LIT,
                    manifest_bytes=middle,
                ),
            )
        try:
            return _send_inline(job, request, data)
        except CommandFailed as e:
            if "manifest patch did not apply" not in e.stderr_tail:
                raise
            # the host's manifest is not byte-identical to ours: send it whole
    data = spec.memo.get(("tar", files), lambda: build_tar(spec.payload_dir, files, manifest_json))
    return _send_inline(job, base, data)


def _send_inline(job: StageJob, request: scripts.StageRequest, body: bytes) -> Staged:
    request = replace(request, extract="tar", payload_bytes=len(body))
    if request.switch:  # the go travels in the same stdin
        with stopping.switching(job.trips.host, "the stage's go"):
            return _send_inline_now(job, request, body)
    return _send_inline_now(job, request, body)


def _send_inline_now(job: StageJob, request: scripts.StageRequest, body: bytes) -> Staged:
    command = scripts.stage(request)
    stdin = scripts.stage_stdin(request, body)
    trips = job.trips
    if request.guard is None:
        out = trips.run(command.argv, env=command.env, stdin=stdin)
        return Staged(out, len(body), len(job.files))
    result = trips.result(command.argv, env=command.env, stdin=stdin, check=False)
    if result.exit_code == scripts.GUARD_EXIT and result.stdout.startswith(
        scripts.GUARD_MISMATCH + "\n"
    ):
        raise FactsDiffer(result.stdout.split("\n", 1)[1])
    if not result.ok:
        raise CommandFailed(
            trips.host,
            "guarded stage failed",
            command=command.argv,
            exit_code=result.exit_code,
            stderr=result.stderr,
        )
    return Staged(result.stdout, len(body), len(job.files))


def stage_streamed(job: StageJob, scratch: Path) -> Staged:
    """A large change: the same one-round-trip stage, its tar streamed from a file written
    once per deploy (far cheaper per file than rsync's protocol for new files)."""
    spec, files = job.spec, job.files
    manifest_json = spec.manifest_json()  # not inside the memo's computation: it takes its lock
    tar_file = spec.memo.get(
        ("tar-file", files),
        lambda: build_tar_file(
            scratch / f"{spec.release_id}-{len(files)}-{time.monotonic_ns()}.tar",
            spec.payload_dir,
            files,
            manifest_json,
        ),
    )
    size = tar_file.stat().st_size
    request = replace(job.request(), extract="tar", payload_bytes=size)
    command = scripts.stage(request)
    go = scripts.commit_line(request.new) if request.switch else b""
    with file_then_go(tar_file, go, scratch) as stdin:
        out = job.trips.run(command.argv, env=command.env, stdin=stdin, stdin_bytes=size + len(go))
    return Staged(out, size, len(files))


def stage_by_rsync(job: StageJob, link_dest: str | None, on_step: Callable[[str], None]) -> Staged:
    """Prepare the release dir, rsync the changed files into it (``--link-dest`` to the
    host's current release when its content is unknown), then link, seal and switch."""
    spec, root, new = job.spec, job.root, job.spec.release_id
    base = job.request()
    prepare = scripts.stage(
        scripts.StageRequest(root, new, mode=base.mode, prev=base.prev, remove=base.remove)
    )
    job.trips.run(prepare.argv, env=prepare.env)
    sent_files = sent = 0
    if job.files:
        on_step("upload")
        sent_files, sent = rsync_files(
            job.trips.executor,
            spec.payload_dir,
            release_dir(root, new),
            job.files,
            link_dest=release_dir(root, link_dest) if link_dest else None,
        )
        on_step("stage")
    manifest = spec.manifest_json().encode()
    seal = replace(
        base,
        mode="keep",
        prev=None,
        remove=(),
        guard=None,
        extract="manifest",
        payload_bytes=len(manifest),
    )
    command = scripts.stage(seal)
    stdin = scripts.stage_stdin(seal, manifest)
    if seal.switch:
        with stopping.switching(job.trips.host, "the stage's go"):
            out = job.trips.run(command.argv, env=command.env, stdin=stdin)
    else:
        out = job.trips.run(command.argv, env=command.env, stdin=stdin)
    return Staged(out, sent + len(manifest), sent_files)


def switch_after_hooks(job: StageJob) -> str:
    """The switch of a release staged without one (after its pre-switch hooks): one round
    trip, the go its only input."""
    request = job.switch_request()
    command = scripts.stage(request)
    with stopping.switching(job.trips.host, "the switch after the pre-switch hooks"):
        return job.trips.run(command.argv, env=command.env, stdin=scripts.stage_stdin(request))


@contextmanager
def file_then_go(source: Path, go: bytes, scratch: Path) -> Iterator[Path]:
    """A FIFO (to pass as a command's stdin) giving ``source``'s bytes, then ``go``, both
    written by a thread of this process: if this process dies first, the command reads
    end-of-file where the go would have been. Without a go, ``source`` itself.

    The go is written only while the run is not stopping (:mod:`quayside.release.stopping`);
    once written, the switch counts as in flight until the command has ended (the ``with``
    block's end), so a stopping run waits for it before reading the hosts."""
    if not go:
        yield source
        return
    scratch.mkdir(parents=True, exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix=".stdin-", dir=scratch))
    fifo = where / "stdin"
    os.mkfifo(fifo, 0o600)
    counted = threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb", buffering=0) as out, open(source, "rb") as data:
                size, offset = os.fstat(data.fileno()).st_size, 0
                while offset < size:
                    sent = os.sendfile(out.fileno(), data.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
                if offset == size and stopping.begin_switch():
                    counted.set()
                    out.write(go)
        except OSError:  # the reader went away: it gets no go
            pass

    writer = threading.Thread(target=feed, name="quayside-stage-stdin", daemon=True)
    writer.start()
    try:
        yield fifo
    finally:
        for _ in range(100):
            if not writer.is_alive():
                break
            # a command that never opened the FIFO leaves the writer waiting in open(): open
            # the other end here, so that it finds no reader and ends
            try:
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                pass
            writer.join(0.1)
        shutil.rmtree(where, ignore_errors=True)
        if counted.is_set():
            stopping.end_switch()
