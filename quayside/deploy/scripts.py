"""argv builders for the deploy's combined host steps: each is ONE ``sh -c`` round trip.

As in :mod:`quayside.commands.release`, every script is a constant that refers only to its
positional parameters; release ids, paths and shared paths travel as separate argv elements
and are validated here before they are placed. Nothing from a user is ever part of a script.

``stage`` does, in one round trip and in this order (each part optional)::

    prepare   the new release dir: a hard-link copy of the previous one (cp -al) minus the
              paths that change, or a fresh empty dir, or keep it as it is
    extract   a tar stream on stdin (changed files + the manifest as <manifest>.new), or just
              the manifest on stdin
    link      shared paths -> <deploy_root>/shared/<path>
    seal      <manifest>.new -> <manifest> (a release with a manifest is complete)
    switch    current -> releases/<new> (ln -sfn to a temp name + mv -T)
    prune     rm -rf old release dirs (never the new one or the one current pointed at)
    next      in the background, ``NEXT_DELAY_S`` after the switch and only if the release
              still serves, at the lowest priority: a hard-link copy of the new release
              (without its manifest), for the next deploy's "prepare" to rename instead of
              copying (``NEXT_PREFIX``)
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from quayside.commands.release import FACTS_FUNCTION as _FACTS
from quayside.commands.release import (
    SCRIPT_NAME,
    check_release_paths,
    current_link,
    current_link_text,
    release_dir,
    releases_dir,
    shared_dir,
    temp_link,
)
from quayside.commands.release import UNDER_LINK_FUNCTION as _UNDER_LINK
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
#: seconds between the switch and the start of that copy: it never competes with the deploy's
#: own post-switch hooks and health check (or, on a shared machine, the other hosts' stages)
NEXT_DELAY_S = 3


STAGE_SCRIPT = (
    "set -eu\n"
    + _UNDER_LINK
    + _FACTS
    + f"""\
mode=$1 prev=$2 new=$3 shared=$4 extract=$5 switch=$6 link=$7 tmp=$8 cur=$9
nrm=${{10}} nprune=${{11}} mpatch=${{12}} guard=${{13}} after=${{14}} spare=${{15}}
expect=${{16}} lit=${{17}}
shift 17
M={MANIFEST_FILENAME}
root=${{cur%/*}}
fail() {{ echo "quayside: $*" >&2; exit 3; }}
# known_facts ID SHA256 [CHECK]: the facts (as ``facts`` prints them) of a host whose current
# is releases/ID with a manifest of that sha256, into $kf; with CHECK the link and the
# manifest are verified first (returns 1 if they differ). Shell builtins and, with CHECK, one
# sha256sum: the common case costs no readlink and no second pass over the manifest.
known_facts() {{
  kf="current:releases/$1"
  if [ -n "${{3:-}}" ]; then
    [ -L "$cur" ] && [ "$cur" -ef "$root/releases/$1" ] && [ -f "$root/releases/$1/$M" ] ||
      return 1
    sha256sum -c --status - 2>/dev/null <<KNOWN || return 1
$2  $root/releases/$1/$M
KNOWN
  fi
  for _kd in "$root"/releases/*; do
    if [ -d "$_kd" ] && [ ! -L "$_kd" ]; then kf="$kf
release:${{_kd##*/}}"; fi
  done
  kf="$kf
manifest-same:$2"
}}
if [ -n "$guard" ]; then
  # staged from the facts the caller expects: anything else, and nothing is touched
  if ! known_facts "${{prev##*/}}" "$guard" check || [ "$kf" != "$expect" ]; then
    cat > /dev/null
    printf '%s\\n' {GUARD_MISMATCH}
    facts "$root" "$guard"
    exit {GUARD_EXIT}
  fi
fi
{{ [ -d "${{new%/*}}" ] && [ -d "$shared" ]; }} || mkdir -p -- "${{new%/*}}" "$shared"
gone() {{ [ ! -e "$1" ] && [ ! -L "$1" ]; }}
case $mode in
  prev)
    [ -d "$prev" ] || fail "previous release $prev does not exist"
    gone "$new" || rm -rf -- "$new"
    # the hard-link copy of $prev the host made after the last deploy (without a manifest),
    # else one made now; either way the new release has no manifest until it is sealed
    next="$root/{NEXT_PREFIX}${{prev##*/}}"
    if ! {{ [ -d "$next" ] && mv -T -- "$next" "$new" 2>/dev/null; }}; then
      cp -al -T -- "$prev" "$new"
    fi
    gone "$new/$M" && gone "$new/$M.new" || rm -f -- "$new/$M" "$new/$M.new"
    ;;
  fresh) gone "$new" || rm -rf -- "$new"; mkdir -p -- "$new" ;;
  keep) [ -d "$new" ] || fail "release $new does not exist" ;;
esac
cd -- "$new"
while [ "$nrm" -gt 0 ]; do
  if ! under_link "$1"; then rm -rf -- "$1"; fi
  shift; nrm=$((nrm - 1))
done
pruned=
while [ "$nprune" -gt 0 ]; do
  pruned="$pruned $1"
  shift; nprune=$((nprune - 1))
done
case $extract in
  tar) tar -x -f - --no-same-owner -C "$new" ;;
  manifest) cat > "$new/$M.new" ;;
esac
if [ -n "$mpatch" ]; then
  # the new manifest = head of the previous one + the changed middle (an argument, or sent
  # in the tar) + its tail; checked unless the guard has just checked the previous one
  P=${{mpatch%%:*}} rest=${{mpatch#*:}}
  S=${{rest%%:*}} sum=${{rest#*:}}
  case $lit in
    =*)
      {{ head -c "$P" -- "$prev/$M"; printf '%s' "${{lit#=}}"; tail -c "$S" -- "$prev/$M"
      }} > "$new/$M.new" ;;
    *)
      {{ head -c "$P" -- "$prev/$M"; cat -- "$new/$M.lit"; tail -c "$S" -- "$prev/$M"
      }} > "$new/$M.new"
      rm -f -- "$new/$M.lit" ;;
  esac
  if [ -z "$guard" ]; then
    echo "$sum  $new/$M.new" | sha256sum -c --status - || fail "manifest patch did not apply"
  fi
fi
for p do
  if under_link "$p"; then
    echo "quayside: cannot link shared path $p: a parent directory is a symlink" >&2
    exit 4
  fi
  rm -rf -- "$p"
  case $p in */*) mkdir -p -- "${{p%/*}}" "$shared/${{p%/*}}" ;; esac
  ln -sfn -- "$shared/$p" "$p"
done
sealed=
if [ -f "$new/$M.new" ]; then mv -f -- "$new/$M.new" "$new/$M"; sealed=1; fi
if [ "$switch" = 1 ]; then
  [ -f "$new/$M" ] || fail "release $new has no manifest; current not switched"
  if [ -n "$guard" ]; then was="releases/${{prev##*/}}"  # checked by the guard
  else was=$(readlink -- "$cur") || was=
  fi
  ln -sfn -- "$link" "$tmp"
  mv -T -- "$tmp" "$cur"
  echo "switched:$was"
  cd /
  for d in $pruned; do
    case $d in "$new"|*/"${{was##*/}}") continue ;; esac
    rm -rf -- "$d"
  done
  if [ -n "$spare" ]; then
    # the next deploy's starting point, made in the background once this release has
    # settled ($spare seconds: past the post-switch hooks and health check) and only if it
    # still serves: a hard-link copy of it without the manifest, at the lowest priority,
    # renamed into place when complete
    ( trap '' HUP
      sleep "$spare"
      cd -- "$root" || exit 0
      [ "$(readlink -- "$cur" 2>/dev/null)" = "$link" ] || exit 0
      # Linux shares CPU time between sessions before nice applies within one (autogroups):
      # this session (only this job is left in it) gets the lowest share too
      {{ echo 19 > /proc/self/autogroup; }} 2>/dev/null || :
      keep={NEXT_PREFIX}${{new##*/}}
      for d in {NEXT_PREFIX}*; do
        [ "$d" = "$keep" ] || nice -n 19 rm -rf -- "$d"
      done
      tmp=$keep.tmp-$$
      if nice -n 19 cp -al -T -- "$new" "$tmp" && rm -f -- "$tmp/$M"; then
        mv -T -- "$tmp" "$keep" || :
      fi
      rm -rf -- "$tmp"
    ) </dev/null >/dev/null 2>&1 &
  fi
fi
if [ -n "$after" ]; then
  printf '%s\\n' {FACTS_AFTER}
  if [ "$switch" = 1 ] && [ -n "$sealed" ]; then
    known_facts "${{new##*/}}" "$after"  # the manifest this script has just sealed
    printf '%s\\n' "$kf"
  else
    facts "$root" "$after"
  fi
fi
exit 0
"""
)

#: $1 release dir, $2 link text, $3 temp link, $4 current link. Switches only to a complete
#: release (one with a manifest); prints ``switched:<previous link>`` or ``missing``.
SWITCH_IF_COMPLETE_SCRIPT = f"""\
set -eu
if [ ! -f "$1/{MANIFEST_FILENAME}" ]; then echo missing; exit 0; fi
was=$(readlink -- "$4") || was=
ln -sfn -- "$2" "$3"
mv -T -- "$3" "$4"
echo "switched:$was"
"""

#: $1 current link: remove it (the host had no release before the one being undone).
UNSWITCH_SCRIPT = """\
set -eu
rm -f -- "$1"
echo "removed"
"""


def _script(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, SCRIPT_NAME, *args]


def stage(
    deploy_root: str,
    new: str,
    *,
    mode: str,
    prev: str | None = None,
    remove: Sequence[str] = (),
    extract: str = "none",
    shared: Sequence[str] = (),
    switch: bool = False,
    prune: Sequence[str] = (),
    manifest_patch: tuple[int, int, str] | None = None,
    patch_middle: bytes | None = None,
    guard: tuple[str, str] | None = None,
    facts_after: str | None = None,
    prepare_next: bool = False,
    next_delay_s: int = NEXT_DELAY_S,
) -> list[str]:
    """ONE command doing the parts of a release step described in the module docstring.

    Args:
        deploy_root: the host's deploy root (absolute, normalised).
        new: id of the release being staged.
        mode: ``prev`` (hard-link copy of ``prev``), ``fresh`` (empty dir) or ``keep``.
        prev: the previous release id (with ``mode="prev"``).
        remove: relative paths to delete from the copy (never through a symlinked parent).
        extract: ``tar`` (a tar stream on stdin), ``manifest`` (manifest JSON on stdin) or
            ``none``.
        shared: relative shared paths to link into ``<deploy_root>/shared``.
        switch: switch ``current`` to ``new`` at the end (refused without a manifest).
        prune: release ids to delete after the switch (never ``new`` or the old current).
        manifest_patch: ``(head, tail, sha256)``: build the new manifest from the first
            ``head`` and last ``tail`` bytes of the previous release's manifest around the
            changed middle, and check its sha256 (with ``mode="prev"``; a guarded stage skips
            the check, as its guard has just checked the previous manifest); a one-file change
            then sends a few hundred bytes of manifest.
        patch_middle: that middle as an argument (at most ``PATCH_ARG_MAX`` bytes of text
            without NUL); None: it is in the tar as ``<manifest>.lit``.
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

    Raises:
        InputError: a bad mode, id or path.
    """
    if mode not in ("prev", "fresh", "keep"):
        raise InputError(f"unknown stage mode {mode!r}")
    if extract not in ("tar", "manifest", "none"):
        raise InputError(f"unknown extract kind {extract!r}")
    new_dir = release_dir(deploy_root, new)
    prev_dir = ""
    if mode == "prev":
        if prev is None:
            raise InputError("stage mode 'prev' needs the previous release id")
        if prev == new:
            raise InputError(f"cannot prepare release {new!r} from itself")
        prev_dir = release_dir(deploy_root, prev)
    paths = check_release_paths(remove, "path to remove")
    links = check_release_paths(shared, "shared path")
    for p in links:
        if p in (MANIFEST_FILENAME, MANIFEST_NEW):
            raise InputError(f"shared path {p!r} is reserved for the release manifest")
    doomed = [release_dir(deploy_root, validate_release_id(r)) for r in prune if r != new]
    patch = lit = ""
    if manifest_patch is not None:
        head, tail, digest = manifest_patch
        if mode != "prev" or head < 0 or tail < 0:
            raise InputError("a manifest patch needs mode 'prev' and sizes")
        patch = f"{int(head)}:{int(tail)}:{_sha256(digest)}"
        if patch_middle is not None:
            lit = "=" + _argument_text(patch_middle, "manifest patch")
    elif patch_middle is not None:
        raise InputError("a patch middle needs a manifest patch")
    known = expect = ""
    if guard is not None:
        if mode != "prev":
            raise InputError("a guarded stage needs mode 'prev'")
        known, expect = _sha256(guard[0]), guard[1].rstrip("\n")
        if "\0" in expect or not expect.startswith("current:"):
            raise InputError("the expected facts are not facts a host prints")
    after = _sha256(facts_after) if facts_after is not None else ""
    if not 0 <= int(next_delay_s) <= 600:
        raise InputError(f"next_delay_s must be 0-600 seconds, not {next_delay_s!r}")
    return _script(
        STAGE_SCRIPT,
        mode,
        prev_dir,
        new_dir,
        shared_dir(deploy_root),
        extract,
        "1" if switch else "0",
        current_link_text(new),
        temp_link(deploy_root, new),
        current_link(deploy_root),
        str(len(paths)),
        str(len(doomed)),
        patch,
        known,
        after,
        str(int(next_delay_s)) if prepare_next and switch else "",
        expect,
        lit,
        *paths,
        *doomed,
        *links,
    )


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


def switch_if_complete(deploy_root: str, release_id: str) -> list[str]:
    """ONE command: switch ``current`` to ``release_id`` if that release is complete on the
    host; prints ``switched:<old link>`` or ``missing``."""
    return _script(
        SWITCH_IF_COMPLETE_SCRIPT,
        release_dir(deploy_root, release_id),
        current_link_text(release_id),
        temp_link(deploy_root, release_id),
        current_link(deploy_root),
    )


def unswitch(deploy_root: str) -> list[str]:
    """ONE command removing ``current`` (undoing a host's very first release)."""
    return _script(UNSWITCH_SCRIPT, current_link(deploy_root))


def remove_release(deploy_root: str, release_id: str) -> list[str]:
    """Delete one (failed, never switched-to) release directory."""
    return ["rm", "-rf", "--", release_dir(deploy_root, release_id)]


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
