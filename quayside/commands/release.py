"""Release-directory layout on a host, as argv builders.

::

    <deploy_root>/releases/<release_id>/     one directory per release
    <deploy_root>/shared/<path>              kept across releases (logs, uploads, .env)
    <deploy_root>/current -> releases/<id>   what is serving; switched atomically

Every function is pure and returns an argv list. Where several steps should cost one SSH round
trip, the argv is ``["sh", "-c", <constant script>, "quayside", arg1, ...]``: the script text is
a constant in this module that only refers to its positional parameters, and every
user-supplied value travels as a separate argv element, never inside the script. A deploy's
stage (copy, extract, link, seal, switch, prune) is one such script of its own:
``quayside/deploy/stage.sh``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from quayside.commands.shell_program import package_script
from quayside.errors import InputError
from quayside.release_id import is_release_id, validate_release_id

#: ``$0`` of every ``sh -c`` script (shows in ``ps`` and in the shell's own error messages).
SCRIPT_NAME = "quayside"

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


def current_link(deploy_root: str) -> str:
    return posixpath.join(check_deploy_root(deploy_root), "current")


def release_dir(deploy_root: str, release_id: str) -> str:
    return posixpath.join(releases_dir(deploy_root), validate_release_id(release_id))


# -- scripts (constants; user data only in "$1" "$2" …) --------------------------------------

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

#: ``read_facts.sh`` in this package, as sent: the host-side ``facts ROOT [KNOWN_SHA256]`` (it
#: prints ``current:<link text>``, ``release:<name>`` lines, then ``manifest:<json>`` for the
#: current release if it has one, or ``manifest-same:<sha256>`` when that is its sha256) and the
#: shell definitions the deploy's host programs share (quayside/deploy/scripts.py sends them in
#: front of stage.sh and rollback_switch.sh).
FACTS_PRELUDE = package_script("quayside.commands", "read_facts.sh")

#: $1 deploy root, $2 (optional) sha256 of a manifest the caller holds: prints the facts and
#: always exits 0
FACTS_SCRIPT = FACTS_PRELUDE + 'set -u\nfacts "$1" "${2:-}"\nexit 0\n'

# -- builders --------------------------------------------------------------------------------


def _script(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, SCRIPT_NAME, *args]


def temp_link(deploy_root: str, release_id: str) -> str:
    return posixpath.join(
        check_deploy_root(deploy_root), f".current.tmp-{validate_release_id(release_id)}"
    )


def current_link_text(release_id: str) -> str:
    """What ``current`` holds: a relative link, so the deploy root can be moved or mounted."""
    return f"releases/{validate_release_id(release_id)}"


def switch_current_script(deploy_root: str, release_id: str) -> list[str]:
    """ONE command for the atomic switch; refuses (exit 3) if the release dir is missing."""
    return _script(
        SWITCH_SCRIPT,
        release_dir(deploy_root, release_id),
        current_link_text(release_id),
        temp_link(deploy_root, release_id),
        current_link(deploy_root),
    )


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
