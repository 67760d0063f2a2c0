"""A service's config directory on a host, as argv builders (the publish flow's host side).

::

    <dir>                      a symlink the service reads through -> <dir>.versions/<id>
    <dir>.versions/<id>/       one complete file set per publish (the previous one is the backup)

Swap method: a versioned directory behind a symlink. The new set is staged as a whole
directory beside the live one (a copy of the live set with the published files written over
it), checked there, and the symlink is replaced with one ``rename(2)`` (``mv -T``). Each path
the service opens then resolves to either the old or the new directory, never to a directory
holding some old and some new files, and the old directory stays untouched as the backup:
restoring is the same rename back. Renaming the files one by one could not promise that (a
reload between two renames reads a mix), and copying over the live files would destroy the
backup. A plain directory found at ``<dir>`` on the first publish is moved into
``<dir>.versions`` as the first version and the link put in its place: two renames in one
command, before the service is told to reload.

Every builder returns ``["sh", "-c", <constant script>, "quayside", arg1, ...]``: the script
text is a constant that refers only to its positional parameters; paths and the service's own
commands travel as separate argv elements, never inside the script.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from quayside.commands.release import SCRIPT_NAME

VERSIONS_SUFFIX = ".versions"
STAGED_MARK = "quayside: staged"
SWITCHED_MARK = "quayside: switched"

READ_SCRIPT = r"""dir=$1; shift
if [ -L "$dir" ]; then printf 'L %s\n' "$(readlink "$dir")"
elif [ -d "$dir" ]; then echo D
else echo N; fi
for f in "$@"; do
  if [ -f "$dir/$f" ]; then printf 'F '; base64 -w0 < "$dir/$f"; echo; else echo M; fi
done
"""

STAGE_SCRIPT = r"""set -e
dir=$1 versions=$2 new=$3 keep=$4; shift 4
staged="$versions/$new"
mkdir -p "$versions"
live=$(readlink "$dir" 2>/dev/null || true)
ls -1 "$versions" | sort -r | tail -n +"$keep" | while IFS= read -r old; do
  [ "$versions/$old" = "$live" ] || rm -rf "$versions/$old"
done
rm -rf "$staged"
mkdir "$staged"
if [ -d "$dir" ]; then cp -a "$dir/." "$staged/"; fi
tar -x --no-same-owner -C "$staged" -f -
echo 'quayside: staged'
set +e
"$@"
rc=$?
if [ "$rc" -ne 0 ]; then rm -rf "$staged"; fi
exit "$rc"
"""

SWAP_SCRIPT = r"""set -e
dir=$1 target=$2 initial=$3; shift 3
if [ -d "$dir" ] && [ ! -L "$dir" ]; then
  mkdir -p "$(dirname "$initial")"
  mv -T "$dir" "$initial"
fi
ln -sfn "$target" "$dir.quayside-next"
mv -T "$dir.quayside-next" "$dir"
echo 'quayside: switched'
"$@"
"""


def versions_dir(live_dir: str) -> str:
    """Where the versions of ``live_dir`` are kept (beside it, on the same file system)."""
    return live_dir + VERSIONS_SUFFIX


def version_path(live_dir: str, version_id: str) -> str:
    """The directory of one version."""
    return posixpath.join(versions_dir(live_dir), version_id)


def read_files(live_dir: str, files: Sequence[str]) -> list[str]:
    """Print what ``live_dir`` is (``L <target>``, ``D`` a plain directory, ``N`` nothing),
    then one line per file: ``F <base64>`` or ``M`` (missing)."""
    return ["sh", "-c", READ_SCRIPT, SCRIPT_NAME, live_dir, *files]


def stage_and_check(live_dir: str, version_id: str, keep: int, check: Sequence[str]) -> list[str]:
    """Stage a new version beside the live one (a copy of the live set, then the tar on stdin
    extracted over it), print :data:`STAGED_MARK`, then run ``check``; the staged directory is
    removed when the check fails. Older versions beyond ``keep`` go first (never the live one).
    """
    return [
        "sh",
        "-c",
        STAGE_SCRIPT,
        SCRIPT_NAME,
        live_dir,
        versions_dir(live_dir),
        version_id,
        str(max(keep, 2)),
        *check,
    ]


def swap_and_run(live_dir: str, target: str, initial: str, then: Sequence[str]) -> list[str]:
    """Point ``live_dir`` at ``target`` with one rename (a plain directory there is first
    moved to ``initial``), print :data:`SWITCHED_MARK`, then run ``then`` (the reload or
    restart)."""
    return ["sh", "-c", SWAP_SCRIPT, SCRIPT_NAME, live_dir, target, initial, *then]
