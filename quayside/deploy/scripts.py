"""argv builders for the deploy's combined host steps: each is ONE ``sh -c`` round trip.

The stage program is ``stage.sh`` in this package (read it for what it does, in order: guard,
prepare, extract, link, seal, commit, switch, prune, next, facts), sent with the definitions it
shares with the rollback switch and ``read_facts`` (``quayside/commands/read_facts.sh``) in
front; :func:`stage` turns a :class:`StageRequest` into its argv and ``STAGE_*`` environment
values. As in :mod:`quayside.commands.release`, every script is constant text: release ids,
paths and shared paths are validated here and travel as separate argv elements or environment
values, never inside a script.

A switching stage switches only on the controller's go, the line :func:`commit_line` that the
controller itself writes after the payload (:func:`stage_stdin`): a controller that dies
mid-transfer sends end-of-file instead, and the host removes what it staged.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from quayside.commands.release import (
    FACTS_PRELUDE,
    SCRIPT_NAME,
    check_deploy_root,
    check_release_paths,
    current_link,
    release_dir,
    releases_dir,
)
from quayside.commands.shell_program import package_script, with_prelude
from quayside.errors import InputError
from quayside.manifest import MANIFEST_FILENAME
from quayside.release_id import validate_release_id

#: where the manifest lands before the release is sealed
MANIFEST_NEW = MANIFEST_FILENAME + ".new"
#: the changed middle of the manifest, when it is patched from the previous one
MANIFEST_LIT = MANIFEST_FILENAME + ".lit"
#: a guarded stage found other facts than expected: this line, the facts, exit GUARD_EXIT
GUARD_MISMATCH = "quayside-facts-mismatch"
GUARD_EXIT = 10
#: the line before the facts a stage prints at its end (when asked to)
FACTS_AFTER = "quayside-facts-after"
#: ``<deploy_root>/<NEXT_PREFIX><release id>``: a hard-link copy of that release, made by the
#: host after switching to it, which the next deploy renames into its new release directory
#: instead of copying (``cp -al`` of every file) while it is being deployed
NEXT_PREFIX = ".quayside-next-"
#: ``<deploy_root>/<UNSWITCHED_PREFIX><release id>``: a link marking a release dir staged but
#: not yet switched to (``UNSWITCHED`` in read_facts.sh); the switch renames it over current. A
#: marked dir that is not current was left by a run killed before its switch: facts leave it
#: out (it takes no keep_releases slot) and the next switch removes it
UNSWITCHED_PREFIX = ".quayside-unswitched-"
#: seconds between the switch and the start of that copy: it never competes with the deploy's
#: own post-switch hooks and health check (or, on a shared machine, the other hosts' stages)
NEXT_DELAY_S = 3


#: the host-side stage program (``stage.sh`` in this package) as sent as the text of ``sh -c``,
#: with the shared definitions of ``read_facts.sh`` (``facts``, ``is_release_id``) in front
STAGE_SCRIPT = with_prelude(FACTS_PRELUDE, package_script("quayside.deploy", "stage.sh"))
#: a rollback's switch to a release the host still has (``rollback_switch.sh``), the same way
ROLLBACK_SWITCH_SCRIPT = with_prelude(
    FACTS_PRELUDE, package_script("quayside.deploy", "rollback_switch.sh")
)
#: what the controller writes after a switching stage's payload: the host's go
COMMIT_PREFIX = "quayside-commit "
#: a switching stage whose controller sent no go (it died, or changed its mind) exits with this
NO_COMMIT_EXIT = 5

StageMode = Literal["prev", "fresh", "keep"]
Extract = Literal["tar", "manifest", "none"]


@dataclass(frozen=True)
class StageRequest:
    """What one run of the stage script does on one host (see the module docstring).

    Attributes:
        deploy_root: the host's deploy root (absolute, normalised).
        new: id of the release being staged.
        mode: ``prev`` (hard-link copy of ``prev``), ``fresh`` (empty dir) or ``keep``.
        prev: the previous release id (with ``mode="prev"``).
        remove: relative paths to delete from the copy (never through a symlinked parent).
        extract: what the payload on stdin is: ``tar`` (changed files and the manifest as
            ``MANIFEST_NEW``), ``manifest`` (the manifest JSON) or ``none``.
        payload_bytes: the payload's size; stdin continues with the go (:func:`stage_stdin`).
        shared: relative shared paths to link into ``<deploy_root>/shared``.
        switch: switch ``current`` to ``new`` at the end, once the controller's go follows
            the payload (refused without a manifest).
        prune: release ids to delete after the switch (never ``new`` or the old current).
        manifest_patch: ``(head, tail, sha256)``: build the new manifest from the first
            ``head`` and last ``tail`` bytes of the previous release's manifest around the
            changed middle, and check its sha256 (with ``mode="prev"``; a guarded stage skips
            the check, as its guard has just checked the previous manifest); a one-file change
            then sends a few hundred bytes of manifest.
        patch_middle: that middle as a value (at most ``PATCH_ARG_MAX`` bytes of ASCII without
            NUL); None: it is in the tar as ``MANIFEST_LIT``.
        guard: ``(known manifest sha256, the expected facts)``: first check that the host's
            facts (as ``read_facts`` with that known sha256 prints them, without the last
            newline) are the expected ones, with ``mode="prev"`` from the release they name
            as current; if not, change nothing, drain stdin, print ``GUARD_MISMATCH`` and the
            facts and exit ``GUARD_EXIT`` - the caller re-plans from them (no extra round
            trip).
        facts_after: a manifest sha256: at the end print ``FACTS_AFTER`` and the host's facts
            (read with that sha256), what the next guarded stage may expect.
        prepare_next: after the switch, have the host make ``<NEXT_PREFIX><new>`` in the
            background: the hard-link copy the next deploy from ``new`` renames instead of
            copying. ``mode="prev"`` uses such a copy of ``prev`` when there is one.
        next_delay_s: how long after the switch that copy starts (0-600 s); it is not made
            if ``current`` no longer points at ``new`` by then.
    """

    deploy_root: str
    new: str
    mode: StageMode
    prev: str | None = None
    remove: Sequence[str] = ()
    extract: Extract = "none"
    payload_bytes: int = 0
    shared: Sequence[str] = ()
    switch: bool = False
    prune: Sequence[str] = ()
    manifest_patch: tuple[int, int, str] | None = None
    patch_middle: bytes | None = None
    guard: tuple[str, str] | None = None
    facts_after: str | None = None
    prepare_next: bool = False
    next_delay_s: int = NEXT_DELAY_S


@dataclass(frozen=True)
class HostCommand:
    """An argv and the environment values it runs with (both travel as separate values)."""

    argv: list[str]
    env: dict[str, str]


#: $1 current link: remove it (the host had no release before the one being undone).
UNSWITCH_SCRIPT = """\
set -eu
rm -f -- "$1"
echo "removed"
"""


def _script(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, SCRIPT_NAME, *args]


def stage(request: StageRequest) -> HostCommand:
    """ONE command doing the parts of a release step described in the module docstring: the
    stage script, its values as ``STAGE_*`` environment values and its path lists as
    arguments. Its stdin is :func:`stage_stdin`.

    Raises:
        InputError: a bad mode, id, path or value.
    """
    r = request
    if r.mode not in ("prev", "fresh", "keep"):
        raise InputError(f"unknown stage mode {r.mode!r}")
    if r.extract not in ("tar", "manifest", "none"):
        raise InputError(f"unknown extract kind {r.extract!r}")
    root = releases_dir(r.deploy_root).rpartition("/")[0]  # validated
    new = validate_release_id(r.new)
    prev = ""
    if r.mode == "prev":
        if r.prev is None:
            raise InputError("stage mode 'prev' needs the previous release id")
        if r.prev == new:
            raise InputError(f"cannot prepare release {new!r} from itself")
        prev = validate_release_id(r.prev)
    paths = check_release_paths(r.remove, "path to remove")
    links = check_release_paths(r.shared, "shared path")
    for p in links:
        if p in (MANIFEST_FILENAME, MANIFEST_NEW):
            raise InputError(f"shared path {p!r} is reserved for the release manifest")
    doomed = [validate_release_id(i) for i in r.prune if i != new]
    patch = lit = ""
    if r.manifest_patch is not None:
        head, tail, digest = r.manifest_patch
        if r.mode != "prev" or head < 0 or tail < 0:
            raise InputError("a manifest patch needs mode 'prev' and sizes")
        patch = f"{int(head)}:{int(tail)}:{_sha256(digest)}"
        if r.patch_middle is not None:
            lit = "=" + _argument_text(r.patch_middle, "manifest patch")
    elif r.patch_middle is not None:
        raise InputError("a patch middle needs a manifest patch")
    known = expect = ""
    if r.guard is not None:
        if r.mode != "prev":
            raise InputError("a guarded stage needs mode 'prev'")
        known, expect = _sha256(r.guard[0]), r.guard[1].rstrip("\n")
        if "\0" in expect or not expect.startswith("current:"):
            raise InputError("the expected facts are not facts a host prints")
    after = _sha256(r.facts_after) if r.facts_after is not None else ""
    if not 0 <= int(r.next_delay_s) <= 600:
        raise InputError(f"next_delay_s must be 0-600 seconds, not {r.next_delay_s!r}")
    if int(r.payload_bytes) < 0 or (r.extract == "none" and r.payload_bytes):
        raise InputError(f"a payload of {r.payload_bytes!r} bytes with extract {r.extract!r}")
    env = {
        "STAGE_ROOT": root,
        "STAGE_NEW": new,
        "STAGE_MODE": r.mode,
        "STAGE_PREV": prev,
        "STAGE_EXTRACT": r.extract,
        "STAGE_PAYLOAD_BYTES": str(int(r.payload_bytes)),
        "STAGE_SWITCH": "1" if r.switch else "0",
        "STAGE_REMOVE_COUNT": str(len(paths)),
        "STAGE_PRUNE_COUNT": str(len(doomed)),
        "STAGE_PATCH": patch,
        "STAGE_PATCH_MIDDLE": lit,
        "STAGE_GUARD": known,
        "STAGE_EXPECT": expect,
        "STAGE_FACTS_AFTER": after,
        "STAGE_NEXT_DELAY": str(int(r.next_delay_s)) if r.prepare_next and r.switch else "",
    }
    return HostCommand(_script(STAGE_SCRIPT, *paths, *doomed, *links), env)


def commit_line(release_id: str) -> bytes:
    """The go a switching stage waits for after its payload."""
    return f"{COMMIT_PREFIX}{validate_release_id(release_id)}\n".encode()


def stage_stdin(request: StageRequest, payload: bytes = b"") -> bytes:
    """The whole stdin of a stage whose payload is in memory: the payload, then - when it
    switches - the go. The controller writes both itself: a controller that dies before the
    end sends end-of-file instead, and the host switches nothing."""
    if len(payload) != request.payload_bytes:
        raise InputError(
            f"the payload is {len(payload)} bytes, the request says {request.payload_bytes}"
        )
    return payload + commit_line(request.new) if request.switch else payload


#: the most bytes of manifest patch passed as an argument (Linux allows 128 KiB per argument)
PATCH_ARG_MAX = 64 * 1024


def fits_argument(data: bytes) -> bool:
    """Whether ``data`` can be a ``patch_middle`` argument."""
    return len(data) <= PATCH_ARG_MAX and b"\0" not in data and data.isascii()


def _argument_text(data: bytes, what: str) -> str:
    """``data`` as an argument string: ASCII without NUL, at most ``PATCH_ARG_MAX`` bytes."""
    if not fits_argument(data):
        raise InputError(f"the {what} cannot travel as an argument")
    return data.decode("ascii")


def _sha256(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise InputError(f"{value!r} is not a sha256")
    return value


def switch_if_complete(
    deploy_root: str,
    release_id: str,
    keep_releases: int | None = None,
    protected: Collection[str] = (),
) -> list[str]:
    """ONE command: switch ``current`` to ``release_id`` if that release is complete on the
    host, then (with ``keep_releases``) prune to exactly that many release dirs besides the
    ``protected`` ones (never deleted, not counted: the only copy of their release); prints
    ``switched:<old link>`` or ``missing``. See ``rollback_switch.sh``."""
    args = [check_deploy_root(deploy_root), validate_release_id(release_id)]
    if keep_releases is not None:
        if int(keep_releases) < 1:
            raise InputError(f"keep_releases must be at least 1, got {keep_releases}")
        args.append(str(int(keep_releases)))
        args += sorted({validate_release_id(r) for r in protected})
    return _script(ROLLBACK_SWITCH_SCRIPT, *args)


def unswitch(deploy_root: str) -> list[str]:
    """ONE command removing ``current`` (undoing a host's very first release)."""
    return _script(UNSWITCH_SCRIPT, current_link(deploy_root))


def remove_release(deploy_root: str, release_id: str) -> list[str]:
    """Delete one (failed, never switched-to) release directory and its not-yet-switched
    mark."""
    rid = validate_release_id(release_id)
    mark = posixpath.join(check_deploy_root(deploy_root), UNSWITCHED_PREFIX + rid)
    return ["rm", "-rf", "--", release_dir(deploy_root, rid), mark]


def host_deploy_root(template: str, host: str) -> str:
    """The deploy root on ``host``: ``{host}`` in the configured root is replaced by the
    inventory host name (useful when several hosts share one file system).

    >>> host_deploy_root("/srv/{host}/app", "web-1")
    '/srv/web-1/app'
    """
    root = template.replace("{host}", host)
    if posixpath.normpath(root) != root or ".." in root.split("/"):
        raise InputError(f"deploy root {root!r} for host {host!r} is not a normalised path")
    releases_dir(root)  # validates
    return root
