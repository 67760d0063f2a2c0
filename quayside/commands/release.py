"""Release-directory layout on a host, as argv builders.

::

    <deploy_root>/releases/<release_id>/     one directory per release
    <deploy_root>/shared/<path>              kept across releases (logs, uploads, .env)
    <deploy_root>/current -> releases/<id>   what is serving; switched atomically

Every function is pure and returns an argv list (or a list of them). Where several steps should
cost one SSH round trip, the argv is ``["sh", "-c", <constant script>, "quayside", arg1, ...]``:
the script text is a constant in this module that only refers to its positional parameters, and
every user-supplied value travels as a separate argv element, never inside the script.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from quayside.errors import InputError
from quayside.manifest import MANIFEST_FILENAME
from quayside.release_id import is_release_id, validate_release_id

#: ``$0`` of every ``sh -c`` script (shows in ``ps`` and in the shell's own error messages).
SCRIPT_NAME = "quayside"

#: Upper bound for one command line, counted as the executor will quote it (``shlex.join``).
#: sshd hands the whole command to the login shell as ONE argument, which Linux caps at 128 KiB.
MAX_COMMAND_BYTES = 100_000

# -- validation and paths ------------------------------------------------------------------


def check_deploy_root(deploy_root: str) -> str:
    """Return ``deploy_root`` if it is an absolute, normalised path other than ``/``."""
    if (
        not isinstance(deploy_root, str)
        or not deploy_root.startswith("/")
        or posixpath.normpath(deploy_root) != deploy_root
        or deploy_root.startswith("//")
        or deploy_root == "/"
        or any(ord(c) < 32 or ord(c) == 127 for c in deploy_root)
    ):
        raise InputError(
            f"deploy root {deploy_root!r} must be an absolute, normalised path other than '/'",
            hint="e.g. /srv/www/app (no trailing slash, no '..', no '//')",
        )
    return deploy_root


def check_relative_path(path: str, what: str = "path") -> str:
    """Return ``path`` if it is relative, normalised, has no ``..`` and so stays inside the
    directory it is joined to; raise ``InputError`` naming it otherwise. Any other character
    (spaces, quotes, newlines) is allowed: paths only ever travel as separate argv elements."""
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or "\x00" in path
        or path in (".", "..")
        or posixpath.normpath(path) != path
        or ".." in path.split("/")
    ):
        raise InputError(
            f"{what} {path!r} must be a normalised relative path without '..'",
            hint="e.g. storage/logs (no leading '/', no '..', no trailing '/')",
        )
    return path


def check_release_paths(paths: Iterable[str], what: str = "path") -> list[str]:
    """``check_relative_path`` for each; duplicates dropped, order kept."""
    return list(dict.fromkeys(check_relative_path(p, what) for p in paths))


def releases_dir(deploy_root: str) -> str:
    return posixpath.join(check_deploy_root(deploy_root), "releases")


def shared_dir(deploy_root: str) -> str:
    return posixpath.join(check_deploy_root(deploy_root), "shared")


def current_link(deploy_root: str) -> str:
    return posixpath.join(check_deploy_root(deploy_root), "current")


def release_dir(deploy_root: str, release_id: str) -> str:
    return posixpath.join(releases_dir(deploy_root), validate_release_id(release_id))


def manifest_path(deploy_root: str, release_id: str) -> str:
    """Where a release's manifest lives; the content goes through ``Executor.put_bytes``."""
    return posixpath.join(release_dir(deploy_root, release_id), MANIFEST_FILENAME)


def command_bytes(argv: Sequence[str]) -> int:
    """Length of ``argv`` as the SSH executor will send it."""
    return len(shlex.join(argv).encode("utf-8", "surrogateescape"))


def _script(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, SCRIPT_NAME, *args]


def _chunks(fixed: list[str], items: Sequence[str], limit: int) -> list[list[str]]:
    """``fixed + items`` split so that each argv stays under ``limit`` bytes (quoted)."""
    out: list[list[str]] = []
    current = list(fixed)
    size = command_bytes(current)
    for item in items:
        cost = len(shlex.quote(item).encode("utf-8", "surrogateescape")) + 1
        if size + cost > limit and len(current) > len(fixed):
            out.append(current)
            current, size = list(fixed), command_bytes(fixed)
        if size + cost > limit:
            raise InputError(f"path {item[:80]!r}… is too long for one command")
        current.append(item)
        size += cost
    if len(current) > len(fixed):
        out.append(current)
    return out


# -- scripts (constants; user data only in "$1" "$2" …) --------------------------------------

#: Shell function: succeed if a parent directory of relative path $1 is a symlink, i.e. the
#: path is not really inside this directory (e.g. it is under a link into shared/).
UNDER_LINK_FUNCTION = """\
under_link() {
  rest=$1 at=.
  while :; do
    case $rest in
      */*) at=$at/${rest%%/*}; rest=${rest#*/} ;;
      *) return 1 ;;
    esac
    if [ -L "$at" ]; then return 0; fi
  done
}
"""

#: $1 previous release dir, $2 new release dir, $3… relative paths to delete from the new one.
PREPARE_SCRIPT = (
    "set -eu\n"
    + UNDER_LINK_FUNCTION
    + """\
prev=$1 new=$2
shift 2
if [ ! -d "$prev" ]; then
  echo "quayside: previous release $prev does not exist" >&2
  exit 3
fi
rm -rf -- "$new"
cp -al -T -- "$prev" "$new"
cd -- "$new"
for p do
  if under_link "$p"; then continue; fi
  rm -rf -- "$p"
done
"""
)

#: $1 release dir, $2… relative paths to delete from it (never through a symlinked parent).
REMOVE_SCRIPT = (
    "set -eu\n"
    + UNDER_LINK_FUNCTION
    + """\
cd -- "$1"
shift
for p do
  if under_link "$p"; then continue; fi
  rm -rf -- "$p"
done
"""
)

#: $1 shared dir, $2 release dir, $3… relative shared paths: each becomes a link into shared/.
LINK_SHARED_SCRIPT = (
    "set -eu\n"
    + UNDER_LINK_FUNCTION
    + """\
shared=$1
cd -- "$2"
shift 2
for p do
  if under_link "$p"; then
    echo "quayside: cannot link shared path $p: a parent directory is a symlink" >&2
    exit 4
  fi
  rm -rf -- "$p"
  case $p in */*) mkdir -p -- "${p%/*}" ;; esac
  ln -sfn -- "$shared/$p" "$p"
done
"""
)

#: $1 release dir, $2 link text (releases/<id>), $3 temp link, $4 current link.
SWITCH_SCRIPT = """\
set -eu
if [ ! -d "$1" ]; then
  echo "quayside: release $1 does not exist; current not switched" >&2
  exit 3
fi
ln -sfn -- "$2" "$3"
mv -T -- "$3" "$4"
"""

#: $1 deploy root, $2 (optional) sha256 of a manifest the caller holds. Prints
#: ``current:<link text>``, ``release:<name>`` lines, then ``manifest:<json>`` for the current
#: release if it has one (``manifest-same:<$2>`` instead when its sha256 is $2). Always exits 0.
#: ``facts ROOT [KNOWN_SHA256]``: what ``read_facts`` prints (shared with the deploy's stage
#: script, which checks the facts it expects before it changes anything)
FACTS_FUNCTION = f"""\
facts() {{
  _fc=$(readlink -- "$1/current") || _fc=
  printf 'current:%s\\n' "$_fc"
  if [ -d "$1/releases" ]; then
    for _fd in "$1"/releases/*; do
      if [ -d "$_fd" ] && [ ! -L "$_fd" ]; then printf 'release:%s\\n' "${{_fd##*/}}"; fi
    done
  fi
  _fi=${{_fc##*/}}
  _fm="$1/releases/$_fi/{MANIFEST_FILENAME}"
  if [ -n "$_fi" ] && [ -f "$_fm" ]; then
    if [ -n "${{2:-}}" ] && echo "$2  $_fm" | sha256sum -c --status - 2>/dev/null; then
      printf 'manifest-same:%s\\n' "$2"
    else
      printf 'manifest:'
      cat -- "$_fm"
      printf '\\n'
    fi
  fi
}}
"""

FACTS_SCRIPT = "set -u\n" + FACTS_FUNCTION + 'facts "$1" "${2:-}"\nexit 0\n'

# -- builders --------------------------------------------------------------------------------


def make_layout(deploy_root: str) -> list[str]:
    """Create ``releases/`` and ``shared/`` under the deploy root."""
    return ["mkdir", "-p", "--", releases_dir(deploy_root), shared_dir(deploy_root)]


def make_release_dir(deploy_root: str, release_id: str) -> list[str]:
    return ["mkdir", "-p", "--", release_dir(deploy_root, release_id)]


def clone_release(deploy_root: str, prev: str, new: str) -> list[str]:
    """Hard-link copy of release ``prev`` as ``new`` (``new`` must not exist yet)."""
    if prev == new:
        raise InputError(f"cannot clone release {prev!r} onto itself")
    return [
        "cp",
        "-al",
        "-T",
        "--",
        release_dir(deploy_root, prev),
        release_dir(deploy_root, new),
    ]


def prepare_from_previous(
    deploy_root: str, prev: str, new: str, remove: Sequence[str] = ()
) -> list[str]:
    """ONE command: replace ``new`` by a hard-link copy of ``prev`` and delete ``remove``
    (relative paths) from it; paths under a symlinked parent are skipped. Raises
    ``InputError`` if the paths do not fit one command; see ``prepare_from_previous_commands``."""
    commands = prepare_from_previous_commands(deploy_root, prev, new, remove)
    if len(commands) != 1:
        raise InputError(
            f"{len(remove)} paths to remove do not fit one command",
            hint="use prepare_from_previous_commands()",
        )
    return commands[0]


def prepare_from_previous_commands(
    deploy_root: str,
    prev: str,
    new: str,
    remove: Sequence[str] = (),
    *,
    limit: int = MAX_COMMAND_BYTES,
) -> list[list[str]]:
    """``prepare_from_previous`` as one command when the paths fit (the usual case), else the
    prepare command followed by ``remove_paths`` commands for the rest."""
    if prev == new:
        raise InputError(f"cannot prepare release {new!r} from itself")
    paths = check_release_paths(remove, "path to remove")
    fixed = _script(PREPARE_SCRIPT, release_dir(deploy_root, prev), release_dir(deploy_root, new))
    chunks = _chunks(fixed, paths, limit) or [fixed]
    first = chunks[0]
    done = len(first) - len(fixed)
    return [first, *remove_paths(deploy_root, new, paths[done:], limit=limit)]


def remove_paths(
    deploy_root: str, release_id: str, paths: Sequence[str], *, limit: int = MAX_COMMAND_BYTES
) -> list[list[str]]:
    """Commands deleting relative ``paths`` inside a release (none if ``paths`` is empty).
    Every path is checked to stay inside the release; one under a symlinked parent directory
    (i.e. under a shared link) is skipped, so nothing outside the release is ever deleted."""
    checked = check_release_paths(paths, "path to remove")
    return _chunks(_script(REMOVE_SCRIPT, release_dir(deploy_root, release_id)), checked, limit)


def link_shared(deploy_root: str, release_id: str, paths: Sequence[str]) -> list[list[str]]:
    """Per shared path: remove it from the release, create its parent, link it into shared/
    (three plain commands per path; ``link_shared_script`` does all in one)."""
    checked = _check_shared(paths)
    rel = release_dir(deploy_root, release_id)
    out: list[list[str]] = []
    for p in checked:
        target = posixpath.join(rel, p)
        out.append(["rm", "-rf", "--", target])
        out.append(["mkdir", "-p", "--", posixpath.dirname(target)])
        out.append(["ln", "-sfn", "--", posixpath.join(shared_dir(deploy_root), p), target])
    return out


def link_shared_script(deploy_root: str, release_id: str, paths: Sequence[str]) -> list[str]:
    """ONE command linking every shared path (see ``link_shared``); refuses (exit 4) a path
    whose parent directory in the release is a symlink."""
    checked = _check_shared(paths)
    argv = _script(
        LINK_SHARED_SCRIPT, shared_dir(deploy_root), release_dir(deploy_root, release_id), *checked
    )
    if command_bytes(argv) > MAX_COMMAND_BYTES:
        raise InputError(f"{len(checked)} shared paths do not fit one command")
    return argv


def _check_shared(paths: Sequence[str]) -> list[str]:
    checked = check_release_paths(paths, "shared path")
    for p in checked:
        if p == MANIFEST_FILENAME:
            raise InputError(f"shared path {p!r} is reserved for the release manifest")
        for q in checked:
            if p.startswith(q + "/"):
                raise InputError(f"shared path {p!r} is inside shared path {q!r}")
    return checked


def temp_link(deploy_root: str, release_id: str) -> str:
    return posixpath.join(
        check_deploy_root(deploy_root), f".current.tmp-{validate_release_id(release_id)}"
    )


def current_link_text(release_id: str) -> str:
    """What ``current`` holds: a relative link, so the deploy root can be moved or mounted."""
    return f"releases/{validate_release_id(release_id)}"


def switch_current(deploy_root: str, release_id: str) -> list[list[str]]:
    """Atomic switch as two commands: a temp symlink, then ``mv -T`` over ``current``
    (rename(2) replaces the link in one step; readers see the old or the new release)."""
    tmp = temp_link(deploy_root, release_id)
    return [
        ["ln", "-sfn", "--", current_link_text(release_id), tmp],
        ["mv", "-T", "--", tmp, current_link(deploy_root)],
    ]


def switch_current_script(deploy_root: str, release_id: str) -> list[str]:
    """ONE command for the atomic switch; refuses (exit 3) if the release dir is missing."""
    return _script(
        SWITCH_SCRIPT,
        release_dir(deploy_root, release_id),
        current_link_text(release_id),
        temp_link(deploy_root, release_id),
        current_link(deploy_root),
    )


def read_current(deploy_root: str) -> list[str]:
    """``readlink`` of ``current`` (exit 1 when there is none yet: run with check=False)."""
    return ["readlink", "--", current_link(deploy_root)]


def parse_current(stdout: str, deploy_root: str | None = None) -> str | None:
    """Release id from ``readlink current`` output (``releases/<id>``, or the absolute form
    under ``deploy_root``); None when empty or pointing anywhere else."""
    text = stdout.rstrip("\n")
    if not text:
        return None
    head, _, name = text.rpartition("/")
    allowed = {"releases"}
    if deploy_root is not None:
        allowed.add(releases_dir(deploy_root))
    if head in allowed and is_release_id(name):
        return name
    return None


def list_releases(deploy_root: str) -> list[str]:
    return ["ls", "-1", "--", releases_dir(deploy_root)]


def parse_release_list(stdout: str) -> list[str]:
    """Valid release ids from ``ls -1`` output, oldest first; anything else is ignored (and so
    never pruned)."""
    return sorted({line for line in stdout.splitlines() if is_release_id(line)})


def remove_releases(
    deploy_root: str, release_ids: Sequence[str], *, protect: Iterable[str | None] = ()
) -> list[str]:
    """``rm -rf`` of the named release directories only. Raises ``InputError`` for an invalid
    id or one in ``protect`` (pass the current and previous release)."""
    guarded = {p for p in protect if p}
    ids = list(dict.fromkeys(validate_release_id(r) for r in release_ids))
    if not ids:
        raise InputError("no releases to remove")
    for r in ids:
        if r in guarded:
            raise InputError(f"refusing to remove release {r}: it is current or previous")
    return ["rm", "-rf", "--", *(release_dir(deploy_root, r) for r in ids)]


def read_manifest(deploy_root: str, release_id: str) -> list[str]:
    return ["cat", "--", manifest_path(deploy_root, release_id)]


def read_facts(deploy_root: str, known_sha256: str | None = None) -> list[str]:
    """ONE command reporting current, the release dirs and the current manifest; parse with
    ``parse_facts``.

    With ``known_sha256`` (the sha256 of a manifest the caller already holds), a current
    manifest with exactly that content is reported as ``manifest-same:<sha256>`` instead of
    being sent; the caller uses its copy (``HostFacts.from_output(..., known=...)``).
    """
    root = check_deploy_root(deploy_root)
    if known_sha256 is None:
        return _script(FACTS_SCRIPT, root)
    if not re.fullmatch(r"[0-9a-f]{64}", known_sha256):
        raise InputError(f"{known_sha256!r} is not a sha256")
    return _script(FACTS_SCRIPT, root, known_sha256)


@dataclass(frozen=True)
class LayoutFacts:
    """What ``read_facts`` found on a host (manifest still JSON text)."""

    current: str | None
    releases: list[str] = field(default_factory=list)
    manifest_json: str | None = None
    #: what ``current`` pointed at, verbatim, when it was not a release of this layout
    current_raw: str | None = None
    #: the sha256 of a ``manifest-same:`` line (the caller's copy is the manifest)
    manifest_same: str | None = None


def parse_facts(stdout: str, deploy_root: str | None = None) -> LayoutFacts:
    current_raw = ""
    releases: list[str] = []
    manifest: str | None = None
    same: str | None = None
    for line in stdout.split("\n"):
        tag, sep, value = line.partition(":")
        if not sep:
            continue
        if tag == "current":
            current_raw = value
        elif tag == "release" and is_release_id(value):
            releases.append(value)
        elif tag == "manifest" and value:
            manifest = value
        elif tag == "manifest-same" and value:
            same = value
    current = parse_current(current_raw, deploy_root)
    return LayoutFacts(
        current=current,
        releases=sorted(set(releases)),
        manifest_json=manifest if current is not None else None,
        current_raw=current_raw if current_raw and current is None else None,
        manifest_same=same if current is not None and manifest is None else None,
    )
