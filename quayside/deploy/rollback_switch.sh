#!/bin/sh
# quayside rollback switch script, version 3
#
# A rollback on a host that still has the release, in one round trip. The controller sends this
# text as `sh -c <text> quayside ROOT RELEASE_ID [KEEP [PROTECTED...]]` (quayside.deploy
# .scripts.switch_if_complete); run it as `sh rollback_switch.sh ROOT RELEASE_ID [KEEP ...]`.
# M, UNSWITCHED and is_release_id come from quayside/commands/read_facts.sh, sent in front of
# this text.
#
#   ROOT        the deploy root (absolute, normalised)
#   RELEASE_ID  the release to serve again
#   KEEP        keep_releases: afterwards exactly KEEP release dirs stay - this release, the one
#               current pointed at (a failed verification switches back to it), then the
#               newest others; empty: nothing is pruned
#   PROTECTED   release ids whose dirs are the only copy of their release (the artifact store
#               has no payload for them): never pruned, and not counted in KEEP
#
# Prints "switched:<what current pointed at>", or "missing" when the release is not complete on
# the host (no manifest): the controller then restores it from the artifact store. The
# next-deploy copies (.quayside-next-<id>) of releases that no longer serve are removed, and
# so are release dirs still marked not yet switched (.quayside-unswitched-<id>: a deploy killed
# in its pre-switch hooks; they take no KEEP slot). All of it happens in the background, after
# the answer.
# Exit status: 0 switched or missing, 3 current is not a symlink (nothing changed).

# run as a file, read those definitions from the package (sent, they are already there)
# shellcheck disable=SC1091 # read_facts.sh is checked on its own
command -v is_release_id >/dev/null || . "$(dirname -- "$0")/../commands/read_facts.sh"
set -eu
root=$1 id=$2 keep=${3:-}
shift 2
if [ "$#" -gt 0 ]; then shift; fi
# the protected ids, each between spaces (release ids contain none)
protected=" $* "
NEXT=.quayside-next-
cur=$root/current

if [ -e "$cur" ] && [ ! -L "$cur" ]; then
  echo "quayside: current is not a symlink (made by hand?): move it away (cd $root &&" \
    "mv current current.by-hand) and roll back again; nothing was changed" >&2
  exit 3
fi
if [ ! -f "$root/releases/$id/$M" ]; then
  echo missing
  exit 0
fi
was=$(readlink -- "$cur") || was=
ln -sfn -- "releases/$id" "$root/.current.tmp-$id"
mv -T -- "$root/.current.tmp-$id" "$cur"
echo "switched:$was"

# the cleanup runs in the background, at the lowest priority: a rollback returns as soon as the
# release serves (a next-deploy copy or a release dir can be thousands of files)
(
  trap '' HUP
  for d in "$root/$NEXT"*; do
    if [ "$d" != "$root/$NEXT$id" ]; then nice -n 19 rm -rf -- "$d"; fi
  done
  for d in "$root/$UNSWITCHED"*; do
    [ -L "$d" ] || continue
    r=${d#"$root/$UNSWITCHED"}
    case $r in "$id" | "${was##*/}") ;; *)
      if is_release_id "$r"; then nice -n 19 rm -rf -- "$root/releases/$r"; fi
      ;;
    esac
    rm -f -- "$d"
  done
  [ -n "$keep" ] || exit 0
  old=${was##*/}
  kept=0
  case $protected in *" $id "*) ;; *) kept=1 ;; esac
  if [ -n "$old" ] && [ "$old" != "$id" ] && [ -d "$root/releases/$old" ]; then
    case $protected in *" $old "*) ;; *) kept=$((kept + 1)) ;; esac
  fi
  others=0
  for d in "$root"/releases/*; do
    r=${d##*/}
    case $r in "$id" | "$old") continue ;; esac
    case $protected in *" $r "*) continue ;; esac
    if is_release_id "$r" && [ -d "$d" ] && [ ! -L "$d" ]; then others=$((others + 1)); fi
  done
  room=$((keep - kept))
  if [ "$room" -lt 0 ]; then room=0; fi
  drop=$((others - room))
  for d in "$root"/releases/*; do # oldest first
    [ "$drop" -gt 0 ] || break
    r=${d##*/}
    case $r in "$id" | "$old") continue ;; esac
    case $protected in *" $r "*) continue ;; esac
    if is_release_id "$r" && [ -d "$d" ] && [ ! -L "$d" ]; then
      nice -n 19 rm -rf -- "$d"
      drop=$((drop - 1))
    fi
  done
) </dev/null >/dev/null 2>&1 &
