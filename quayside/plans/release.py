"""Plan one host's release: facts (what the host has) + target (what it should have) -> steps.

The plan is pure data. An empty plan means "no change": the current release already has the
target's manifest digest (content, modes, links and shared paths). Steps, in order::

    CreateRelease | PrepareFromPrevious   the new release directory (fresh, or a hard-link copy
                                          of the current release minus what changed)
    Upload                                the files to send into it
    LinkShared                            links into <deploy_root>/shared
    WriteManifest                         <release>/.quayside-manifest.json
    Switch                                current -> releases/<new>
    Prune                                 old releases beyond keep_releases

Commands for each step come from ``quayside.commands.release`` and ``quayside.commands.rsync``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from quayside.commands.release import check_release_paths, parse_facts
from quayside.errors import InputError
from quayside.manifest import (
    MANIFEST_FILENAME,
    Manifest,
    ManifestDiff,
    diff,
    human_bytes,
    removal_roots,
)
from quayside.release_id import is_release_id, validate_release_id


@dataclass(frozen=True)
class HostFacts:
    """What a host has: the current release id, its recorded manifest, all release ids."""

    current: str | None
    current_manifest: Manifest | None = None
    releases: tuple[str, ...] = ()

    @classmethod
    def from_output(
        cls,
        stdout: str,
        deploy_root: str | None = None,
        known: Mapping[str, Manifest] | None = None,
    ) -> HostFacts:
        """Facts from the output of ``commands.release.read_facts``. An unreadable manifest
        counts as none (the plan then sends everything, hard-linking unchanged files).
        ``known`` maps the sha256 of manifest files the caller holds to their manifests: a
        host answering ``manifest-same:<sha256>`` has that one (no JSON parsed again)."""
        raw = parse_facts(stdout, deploy_root)
        manifest = None
        if raw.manifest_same is not None and known and raw.manifest_same in known:
            manifest = known[raw.manifest_same]
        elif raw.manifest_json is not None:
            try:
                manifest = Manifest.from_json(raw.manifest_json, keep_text=True)
            except InputError:
                manifest = None
        return cls(raw.current, manifest, tuple(raw.releases))


@dataclass(frozen=True)
class ReleaseTarget:
    """What the host should have after the release."""

    release_id: str
    manifest: Manifest
    shared_paths: tuple[str, ...] = ()
    keep_releases: int = 5
    #: release ids never pruned and not counted in ``keep_releases``: their directories are
    #: the only copy of a release (``quayside.ledger.sole_copies``)
    protected: frozenset[str] = frozenset()

    def recorded_manifest(self) -> Manifest:
        """The manifest as written to the host: the payload plus the shared paths."""
        return self.manifest.with_shared(self.shared_paths)


@dataclass(frozen=True)
class CreateRelease:
    """Create an empty release directory (removing a leftover one of the same id first)."""

    release_id: str
    replace_existing: bool = False


@dataclass(frozen=True)
class PrepareFromPrevious:
    """Hard-link copy of ``prev`` as ``new``, then delete ``remove`` (relative paths) from it."""

    prev: str
    new: str
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class Upload:
    """Send ``files`` (relative paths, parents first) into the release; ``bytes`` is the size
    of the regular files among them. ``link_dest`` names a release to hard-link unchanged
    files from (rsync ``--link-dest``), when the host's current content is not known."""

    release_id: str
    files: tuple[str, ...]
    bytes: int
    link_dest: str | None = None


@dataclass(frozen=True)
class LinkShared:
    release_id: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class WriteManifest:
    release_id: str
    content: str


@dataclass(frozen=True)
class Switch:
    new: str
    previous: str | None = None


@dataclass(frozen=True)
class Prune:
    release_ids: tuple[str, ...]


Step = CreateRelease | PrepareFromPrevious | Upload | LinkShared | WriteManifest | Switch | Prune


@dataclass(frozen=True)
class ReleasePlan:
    """Ordered steps for one host; ``steps == ()`` means no change."""

    target: ReleaseTarget
    facts: HostFacts
    steps: tuple[Step, ...]
    #: what changes against the current release (None when the current content is unknown)
    diff: ManifestDiff | None = None
    prune: tuple[str, ...] = field(default=())

    @property
    def no_change(self) -> bool:
        return not self.steps


def _under(path: str, roots: set[str]) -> bool:
    parts = path.split("/")
    return any("/".join(parts[:i]) in roots for i in range(1, len(parts) + 1))


#: up to this many roots, :func:`under_any` tests prefixes in one ``str.startswith`` call
_PREFIX_TEST_MAX = 64


def under_any(roots: Collection[str]) -> Callable[[str], bool]:
    """A test for "the path is one of ``roots`` or inside one of them": for the few roots of
    a small change, one ``in`` and one ``startswith`` per path instead of a set lookup per
    path component."""
    exact = set(roots)
    if not exact:
        return lambda path: False
    if len(exact) > _PREFIX_TEST_MAX:
        return lambda path: _under(path, exact)
    prefixes = tuple(r + "/" for r in exact)
    return lambda path: path in exact or path.startswith(prefixes)


def prune_candidates(
    releases: Sequence[str],
    *,
    new: str,
    current: str | None,
    keep_releases: int,
    protected: Collection[str] = (),
) -> tuple[str, ...]:
    """Releases to delete once ``new`` is current, so that exactly ``keep_releases`` remain
    (as Capistrano and Walle count them): ``new``, the current one (which becomes the
    previous: a failed verification switches back to it, so it stays even with
    ``keep_releases: 1``), then the newest others. Oldest first.

    ``protected`` ids (directories that are the only copy of their release) are never
    deleted and do not count: ``keep_releases`` of the others stay besides them.
    """
    if keep_releases < 1:
        raise InputError(f"keep_releases must be at least 1, got {keep_releases}")
    shielded = set(protected)
    every = sorted({r for r in releases if is_release_id(r)} | {new})
    keep = {new} | ({current} if current is not None else set())
    counted = len(keep - shielded)
    for r in reversed(every):
        if counted >= keep_releases:
            break
        if r not in keep and r not in shielded:
            keep.add(r)
            counted += 1
    return tuple(r for r in every if r not in keep and r not in shielded)


def plan_release(facts: HostFacts, target: ReleaseTarget) -> ReleasePlan:
    """Compare ``facts`` with ``target`` and return the steps that make the host match.

    Raises:
        InputError: invalid release id, shared path or keep_releases, or the target id is the
            current release but with different content (it would be changed while serving).
    """
    new = validate_release_id(target.release_id)
    shared = sorted(check_release_paths(target.shared_paths, "shared path"))
    if target.keep_releases < 1:
        raise InputError(f"keep_releases must be at least 1, got {target.keep_releases}")
    recorded = target.recorded_manifest()
    current = facts.current
    if current is not None and facts.current_manifest is not None:
        if facts.current_manifest == recorded:  # what equal digests mean, without the JSON
            return ReleasePlan(target, facts, (), diff(facts.current_manifest, recorded))
    if current == new:
        raise InputError(
            f"release {new} is current on the host but has different content",
            hint="deploy with a new release id",
        )

    target_shared = set(shared)
    wanted = target.manifest
    steps: list[Step] = []
    change: ManifestDiff | None = None
    if current is not None and facts.current_manifest is not None:
        old = facts.current_manifest
        change = diff(old, wanted)
        doomed = set(change.removed)
        for p in change.changed:
            if old[p].kind != "dir" or wanted[p].kind != "dir":
                doomed.add(p)
        doomed |= set(old.shared) | target_shared | {MANIFEST_FILENAME}
        roots = removal_roots(doomed)
        fresh = set(change.added) | set(change.changed)
        in_shared, in_removed = under_any(target_shared), under_any(roots)
        files = [p for p in wanted if (p in fresh or in_removed(p)) and not in_shared(p)]
        steps.append(PrepareFromPrevious(current, new, tuple(roots)))
        link_dest = None
    else:
        if current is not None:
            change = None  # content of the current release unknown
        else:
            change = diff(None, wanted)
        in_shared = under_any(target_shared)
        files = [p for p in wanted if not in_shared(p)]
        steps.append(CreateRelease(new, replace_existing=new in facts.releases))
        link_dest = current
    size = sum(wanted[p].size for p in files if wanted[p].kind == "file")
    if files:
        steps.append(Upload(new, tuple(files), size, link_dest))
    if shared:
        steps.append(LinkShared(new, tuple(shared)))
    steps.append(WriteManifest(new, recorded.to_json()))
    steps.append(Switch(new, current))
    prune = prune_candidates(
        facts.releases,
        new=new,
        current=current,
        keep_releases=target.keep_releases,
        protected=target.protected,
    )
    if prune:
        steps.append(Prune(prune))
    return ReleasePlan(target, facts, tuple(steps), change, prune)


def describe(plan: ReleasePlan, *, limit: int = 20) -> str:
    """Dry-run text for one host: what would change against the current release."""
    t = plan.target
    if plan.no_change:
        return f"no change: {plan.facts.current} already has this content"
    lines: list[str] = []
    cur = plan.facts.current
    head = f"release {t.release_id}" + (f" (current: {cur})" if cur else " (first release)")
    lines.append(head)
    if plan.diff is None:
        lines.append("  current content unknown (no manifest): every file is checked")
    else:
        lines.append(f"  {plan.diff.summary()}")
        lines += [f"    {row}" for row in plan.diff.lines(limit)]
    upload = next((s for s in plan.steps if isinstance(s, Upload)), None)
    if upload is not None:
        lines.append(f"  send {len(upload.files)} path(s), {human_bytes(upload.bytes)}")
    if plan.prune:
        lines.append(f"  prune {len(plan.prune)} old release(s): {', '.join(plan.prune)}")
    return "\n".join(lines)
