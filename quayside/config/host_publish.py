"""One host's part of a config publish, through its executor: read what is live, stage the
new set beside it and check it, swap and reload (or restart), verify; on a failed reload or
verify, restore the previous set, reload again and check that the old answers are back.

Round trips per host: one to read (the plan), one to stage and check, one to swap and reload;
a restore is one more. Verification runs from here (DNS queries, HTTP probes) unless the
service's verify is a command on the host.

The swap method and why: :mod:`quayside.commands.config_files`.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from quayside.commands.config_files import (
    STAGED_MARK,
    SWITCHED_MARK,
    read_files,
    stage_and_check,
    swap_and_run,
    version_path,
)
from quayside.config.publish_plan import HostFacts, HostPlan, PublishFile, parse_facts
from quayside.config.publish_verify import VerifyFailed, verify_dns, verify_http
from quayside.config.service_commands import HostCommands, fill, host_commands, live_dir
from quayside.errors import QuaysideError
from quayside.executors.base import CommandResult, Executor
from quayside.inventory.config_services import ConfigService
from quayside.release import stopping
from quayside.release.host_report import HostReport

COMMAND_TIMEOUT_S = 120
INITIAL_VERSION = "00000000T000000Z-initial"
"""The name a plain directory found at the service's dir gets (sorts before every publish)."""


def as_is(text: str) -> str:
    """No masking (a service whose environment has no secret variables)."""
    return text


@dataclass(frozen=True)
class HostJob:
    """Everything one host's publish needs."""

    host: str
    address: str
    service: ConfigService
    plan: HostPlan
    files: Sequence[PublishFile] = field(repr=False)
    version_id: str
    redact: Callable[[str], str] = field(default=as_is, repr=False, compare=False)
    """Masks every value a secret variable has had (:func:`quayside.config.publish_files.
    secret_masker`): a checker, a reload or a verify may echo a rendered line back (``nginx -t``
    quotes the directive it refuses), and what a host says goes into host rows, logs, the
    host table and notifications."""

    @property
    def live(self) -> str:
        return live_dir(self.service, self.host)

    @property
    def staged(self) -> str:
        return version_path(self.live, self.version_id)

    @property
    def initial(self) -> str:
        return version_path(self.live, INITIAL_VERSION)

    def commands(self) -> HostCommands:
        return host_commands(self.service, self.host, self.address, self.staged)


def read_host(executor: Executor, service: ConfigService, files: Sequence[str]) -> HostFacts:
    """What ``executor``'s host has live for ``service`` (one round trip)."""
    result = executor.run(read_files(live_dir(service, executor.name), files), timeout=60)
    return parse_facts(executor.name, result.stdout, files)


def tar_of(files: Sequence[PublishFile]) -> bytes:
    """The files as a tar stream (0644, paths relative to the service's dir)."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            data = f.content.encode("utf-8")
            info = tarfile.TarInfo(f.filename)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _tail(result: CommandResult, redact: Callable[[str], str]) -> str:
    """Exit code and the last stderr lines, secrets masked before the cut (a secret cut in
    two would no longer match its mask)."""
    lines = [line.strip() for line in redact(result.stderr).splitlines() if line.strip()]
    return f"exit {result.exit_code}" + (f": {'; '.join(lines[-2:])[:300]}" if lines else "")


def verify(executor: Executor, job: HostJob, expect: Literal["after", "before"] = "after") -> str:
    """Check the service serves what it should; returns what was checked.

    Raises:
        VerifyFailed: it does not (what it answered is named).
    """
    service, done = job.service, []
    values = {"host": job.host, "address": job.address, "dir": job.live}
    if service.kind == "dnsmasq":
        server = fill([service.dns_server], values)[0]
        verify_dns(
            server,
            service.dns_port,
            job.plan.records,
            expect=expect,
            timeout_s=service.verify_timeout_s,
        )
        done.append(f"{len(job.plan.records)} DNS record(s)" if job.plan.records else "DNS up")
    if service.verify_url is not None:
        url = fill([service.verify_url], values)[0]
        text = service.verify_text if expect == "after" else None
        verify_http(url, text, timeout_s=service.verify_timeout_s)
        done.append("HTTP")
    command = job.commands().verify
    if command is not None:
        result = executor.run(command, timeout=service.verify_timeout_s + 5, check=False)
        if not result.ok:
            raise VerifyFailed(f"verify command: {_tail(result, job.redact)}")
        done.append("verify command")
    if not done:  # the inventory refuses such a service; a host is never verified by nothing
        raise VerifyFailed(f"{job.service.kind} service has no verify_url or verify to check")
    return ", ".join(done)


def publish_host(executor: Executor, job: HostJob) -> HostReport:
    """Stage, check, swap, reload or restart, verify; restore on a failed reload or verify.

    Returns:
        ``succeeded`` (switched, ``previous`` = the directory to restore), or ``failed`` with
        the step and what broke (nothing live touched when the step is ``stage``/``check``;
        restored when it is ``reload``/``verify``); secret values in what the host said are
        masked with ``job.redact``.
    """
    report = _publish_host(executor, job)
    return replace(report, message=job.redact(report.message))


def _publish_host(executor: Executor, job: HostJob) -> HostReport:
    started = time.monotonic()
    host, plan = job.host, job.plan
    assert plan.action is not None, "a host without changes is not published"
    commands = job.commands()
    payload = tar_of([f for f in job.files if f.filename in plan.changed])
    staged = executor.run(
        stage_and_check(job.live, job.version_id, job.service.keep_versions, commands.check),
        stdin=payload,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if not staged.ok:
        step = "check" if STAGED_MARK in staged.stdout else "stage"
        why = f"{step} failed, nothing live was touched: {_tail(staged, job.redact)}"
        return HostReport(host, "failed", step, why, bytes_sent=len(payload),
                          duration_s=time.monotonic() - started)  # fmt: skip
    previous = {"link": plan.previous, "dir": job.initial, "none": None}[plan.live]
    if not stopping.begin_switch():  # the run is being cancelled: touch nothing live
        why = str(stopping.refusal(host, "the swap"))
        return HostReport(host, "failed", "switch", why, bytes_sent=len(payload),
                          duration_s=time.monotonic() - started)  # fmt: skip
    try:
        swapped = executor.run(
            swap_and_run(job.live, job.staged, job.initial, commands.for_action(plan.action)),
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    finally:
        stopping.end_switch()
    if not swapped.ok and SWITCHED_MARK not in swapped.stdout:
        why = f"switch failed: {_tail(swapped, job.redact)}"
        return HostReport(host, "failed", "switch", why, bytes_sent=len(payload),
                          duration_s=time.monotonic() - started)  # fmt: skip
    try:
        if not swapped.ok:
            raise QuaysideError(f"{plan.action} failed: {_tail(swapped, job.redact)}")
        checked = verify(executor, job)
    except QuaysideError as e:
        step = "verify" if isinstance(e, VerifyFailed) else plan.action
        note = _restore_host(executor, job, previous)
        return HostReport(host, "failed", step, f"{e}; {note}", previous, False, len(payload),
                          len(plan.changed), time.monotonic() - started)  # fmt: skip
    message = f"{plan.action}: {', '.join(plan.changed)}; verified {checked}"
    return HostReport(host, "succeeded", "verify", message, previous, True, len(payload),
                      len(plan.changed), time.monotonic() - started)  # fmt: skip


def restore_host(executor: Executor, job: HostJob, previous: str | None) -> str:
    """Point the service back at ``previous``, reload or restart it again, and check the old
    answers are back. Returns what happened, in words (the host's report says it; secret
    values masked with ``job.redact``)."""
    return job.redact(_restore_host(executor, job, previous))


def _restore_host(executor: Executor, job: HostJob, previous: str | None) -> str:
    if previous is None:
        return "no previous files to restore (first publish to this host)"
    action = job.plan.action or "restart"
    if not stopping.begin_switch():
        return f"RESTORE FAILED: {stopping.refusal(job.host, 'the swap back')}"
    try:
        back = executor.run(
            swap_and_run(job.live, previous, job.initial, job.commands().for_action(action)),
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    finally:
        stopping.end_switch()
    if not back.ok:
        return f"RESTORE FAILED: {_tail(back, job.redact)}"
    try:
        checked = verify(executor, job, expect="before")
    except QuaysideError as e:
        return f"restored the previous files, but {e}"
    return f"restored the previous files and {action}ed; old answers back ({checked})"
