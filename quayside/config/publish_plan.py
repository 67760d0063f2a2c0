"""The plan of a config publish, per host: read what the host has in place, compare it with
the rendered files, and say which files change, the diff a person reads (secrets masked),
whether the service needs a reload or a restart, and which DNS records must answer
differently afterwards. Pure: no host, no store, no Prefect.

A host whose files already equal the rendered ones is "no change" and is skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from quayside.config.address import ItemAddress
from quayside.config.diffing import unified
from quayside.config.dns_records import (
    RecordChange,
    Records,
    changed_records,
    conf_records,
    hosts_records,
    merge,
)
from quayside.config.service_commands import Action, action_for, picked_up_by_reload
from quayside.errors import InputError, QuaysideError
from quayside.inventory.config_services import ConfigService
from quayside.markdown_text import code, code_block, inline

LiveKind = Literal["link", "dir", "none"]


@dataclass(frozen=True)
class PublishFile:
    """One file to publish: the item version and its rendered content."""

    filename: str
    address: ItemAddress
    version: int
    content: str = field(repr=False)
    content_hash: str
    shown: str = field(repr=False)
    """The rendered content with secrets masked."""
    variables: dict[str, int] = field(default_factory=dict)
    """name -> version of the variables the template read (empty for a plain file): the
    published marker records them."""


@dataclass(frozen=True)
class HostFacts:
    """What a host has in place for the service."""

    host: str
    live: LiveKind
    target: str | None
    """Where the live symlink points (``live == "link"``)."""
    files: dict[str, str | None] = field(repr=False)
    """filename -> live content (None: missing)."""


@dataclass(frozen=True)
class HostPlan:
    """What publishing changes on one host."""

    host: str
    changed: tuple[str, ...]
    diff: str = field(repr=False)
    action: Action | None
    records: tuple[RecordChange, ...]
    previous: str | None
    live: LiveKind = "link"

    @property
    def no_change(self) -> bool:
        return not self.changed


def parse_facts(host: str, stdout: str, files: Sequence[str]) -> HostFacts:
    """The facts printed by :func:`quayside.commands.config_files.read_files`.

    Raises:
        QuaysideError: the output does not have one line per file.
    """
    lines = stdout.splitlines()
    if len(lines) != len(files) + 1:
        raise QuaysideError(
            f"{host}: unexpected answer reading the config files ({len(lines)} lines for "
            f"{len(files)} file(s))"
        )
    head = lines[0]
    live: LiveKind = "link" if head.startswith("L ") else "dir" if head == "D" else "none"
    target = head[2:] if live == "link" else None
    contents: dict[str, str | None] = {}
    for name, line in zip(files, lines[1:], strict=True):
        if line.startswith("F "):
            contents[name] = base64.b64decode(line[2:]).decode("utf-8", errors="replace")
        else:
            contents[name] = None
    return HostFacts(host, live, target, contents)


def check_records(service: ConfigService, files: Sequence[PublishFile]) -> None:
    """Refuse a dnsmasq hosts file dnsmasq would read wrongly (before anything runs).

    Raises:
        InputError: naming the item and the line.
    """
    if service.kind != "dnsmasq":
        return
    for f in files:
        if picked_up_by_reload(service, f.filename):
            hosts_records(f.content, str(f.address))


def records_of(service: ConfigService, files: Mapping[str, str | None]) -> Records:
    """The DNS records the given files make dnsmasq answer (empty for other services; a file
    on a host that does not parse counts as no records)."""
    if service.kind != "dnsmasq":
        return {}
    parts = []
    for name, content in files.items():
        if content is None:
            continue
        try:
            parts.append(
                hosts_records(content, name)
                if picked_up_by_reload(service, name)
                else conf_records(content)
            )
        except InputError:
            continue
    return merge(*parts)


def plan_host(
    service: ConfigService,
    facts: HostFacts,
    files: Sequence[PublishFile],
    redact: Callable[[str], str],
) -> HostPlan:
    """Compare the host's files with ``files``.

    Args:
        redact: masks secret values (current and earlier versions) in the host's content.
    """
    changed = tuple(f.filename for f in files if facts.files.get(f.filename) != f.content)
    diffs = []
    for f in files:
        if f.filename not in changed:
            continue
        old = facts.files.get(f.filename)
        diffs.append(
            unified(
                redact(old) if old is not None else "",
                f.shown,
                f"{facts.host}:{f.filename} (live)" if old is not None else "/dev/null",
                f"{f.address} v{f.version}",
            )
        )
    before = records_of(service, {f.filename: facts.files.get(f.filename) for f in files})
    after = records_of(service, {f.filename: f.content for f in files})
    return HostPlan(
        facts.host,
        changed,
        "".join(diffs),
        action_for(service, changed) if changed else None,
        tuple(changed_records(before, after)) if changed else (),
        facts.target,
        facts.live,
    )


def content_digest(files: Sequence[PublishFile], variable_versions: Mapping[str, int]) -> str:
    """What the approval is bound to: every file's address, version and rendered content hash,
    and the variable versions the rendering used."""
    payload = {
        "files": sorted((str(f.address), f.version, f.content_hash) for f in files),
        "variables": sorted(variable_versions.items()),
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def plan_markdown(
    *,
    project: str,
    env: str,
    service: str,
    files: Sequence[PublishFile],
    digest: str,
    plans: Sequence[HostPlan],
    requested_by: str,
    title: str = "Config publish",
) -> str:
    """The plan as approvers and the run's artifact show it: the files and versions, the
    content digest the approval is bound to, and per host its diff (secrets masked)."""
    changing = [p for p in plans if not p.no_change]
    same = [p.host for p in plans if p.no_change]
    lines = [
        f"### {inline(title)}: {code(project)}/{code(env)}, service {code(service)}",
        "",
        f"Requested by {inline(requested_by)}. Rendered content digest {code(digest)} "
        "(the approval is bound to it: a change voids it).",
        "",
        "| file | version | content hash |",
        "| --- | --- | --- |",
        *(
            f"| {code(f.filename, in_table=True)} | v{f.version} | "
            f"{code(f.content_hash[:16], in_table=True)} |"
            for f in files
        ),
        "",
        f"{len(changing)} host(s) to change"
        + (f", {len(same)} already up to date: {inline(', '.join(same))}" if same else "")
        + ".",
        "",
    ]
    for p in changing:
        action = f"{p.action}" + (
            f", {len(p.records)} DNS record(s) to verify" if p.records else ""
        )
        lines += [
            f"#### {inline(p.host)} ({inline(action)})",
            "",
            code_block(p.diff, info="diff"),
            "",
        ]
    return "\n".join(lines)
