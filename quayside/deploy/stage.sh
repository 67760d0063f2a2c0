#!/bin/sh
# quayside stage script, version 3
#
# One round trip of a git deploy on a host. The controller sends this text as
# `sh -c <text> quayside PATH...` (quayside.deploy.scripts.stage): every value comes as a
# STAGE_* environment variable or an argument, never inside the text, so it can also be run as
# it is: `env STAGE_ROOT=/srv/app STAGE_NEW=<id> STAGE_MODE=fresh ... sh stage.sh`. M, UNSWITCHED,
# facts and is_release_id come from quayside/commands/read_facts.sh, sent in front of this text.
#
# In this order, each part optional:
#   guard     check that the host's facts are the ones the controller expects (else touch
#             nothing, print them and exit 10)
#   prepare   the new release dir: a hard-link copy of the previous release (the host's
#             .quayside-next-<prev> copy when there is one) minus the paths that change, or a
#             fresh empty dir, or keep it as it is; marked not yet switched (the link
#             .quayside-unswitched-<new> -> releases/<new>, which the switch renames over current)
#   extract   the payload: the first STAGE_PAYLOAD_BYTES bytes of stdin, a tar (changed files
#             and the manifest as <manifest>.new) or the manifest alone
#   link      shared paths -> <root>/shared/<path>
#   seal      <manifest>.new -> <manifest> (a release with a manifest is complete)
#   commit    with STAGE_SWITCH=1: wait for the controller's go, the line
#             "quayside-commit <STAGE_NEW>" right after the payload on stdin. Anything else
#             (a controller that died sends end-of-file) removes the new release dir and exits 5
#   switch    current -> releases/<new> (its not-yet-switched mark renamed over it)
#   prune     old release dirs (never the new one or the one current pointed at) and their
#             next-deploy copies; what interrupted runs left: release dirs never sealed, or
#             still marked not yet switched (a run killed in its pre-switch hooks), and temp
#             links. facts does not list a marked release: it takes no keep_releases slot
#   next      in the background, STAGE_NEXT_DELAY seconds after the switch and only if the
#             release still serves, at the lowest priority: a hard-link copy of the new release
#             without its manifest, which the next deploy renames instead of copying
#   facts     with STAGE_FACTS_AFTER: the line quayside-facts-after and the host's facts
#
# Environment (every one is set by the controller, empty when unused):
#   STAGE_ROOT           the deploy root (absolute, normalised)
#   STAGE_NEW            id of the release being staged
#   STAGE_MODE           prev | fresh | keep
#   STAGE_PREV           id of the previous release (mode prev)
#   STAGE_EXTRACT        tar | manifest | none
#   STAGE_PAYLOAD_BYTES  how many bytes of stdin the payload is
#   STAGE_SWITCH         1: switch current after the controller's go; 0: stop after sealing
#   STAGE_REMOVE_COUNT   how many of the arguments are paths to delete from the copy
#   STAGE_PRUNE_COUNT    how many arguments after those are release ids to prune
#   STAGE_PATCH          HEAD:TAIL:SHA256: the new manifest is the first HEAD and last TAIL
#                        bytes of the previous release's manifest around a changed middle
#   STAGE_PATCH_MIDDLE   =<that middle>, or empty when it is in the tar as <manifest>.lit
#   STAGE_GUARD          sha256 of the manifest the controller holds: check STAGE_EXPECT
#   STAGE_EXPECT         the facts (as `facts` prints them) the host is expected to have
#   STAGE_FACTS_AFTER    a manifest sha256: print the facts at the end
#   STAGE_NEXT_DELAY     seconds before the next-deploy copy; empty: no copy
# Arguments: the paths to delete, the release ids to prune, then the shared paths.
# Exit status: 0 done, 3 refused (e.g. current is not a symlink), 4 a shared path under a symlink, 5 no go from the
# controller, 10 the facts differ from STAGE_EXPECT (nothing touched).

# run as a file, read those definitions from the package (sent, they are already there)
# shellcheck disable=SC1091 # read_facts.sh is checked on its own
command -v is_release_id >/dev/null || . "$(dirname -- "$0")/../commands/read_facts.sh"
set -eu
NEXT=.quayside-next-
root=$STAGE_ROOT
mark=$root/$UNSWITCHED$STAGE_NEW
cur=$root/current
shared=$root/shared
new=$root/releases/$STAGE_NEW
prev=
if [ -n "$STAGE_PREV" ]; then prev=$root/releases/$STAGE_PREV; fi
link=releases/$STAGE_NEW
nrm=$STAGE_REMOVE_COUNT
nprune=$STAGE_PRUNE_COUNT

fail() {
  echo "quayside: $*" >&2
  exit 3
}

# the new release dir (and its mark) is removed when the script stops before switching to it
# (an error, a signal, no go from the controller), unless it is what current serves
partial=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [ -n "$partial" ] && [ "$(readlink -- "$cur" 2>/dev/null)" != "$link" ]; then
    rm -rf -- "$new" "$mark"
  fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# under_link PATH: succeed if a parent directory of the relative PATH is a symlink, i.e. the
# path is not really inside this directory (e.g. it is under a link into shared/)
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

# known_facts ID SHA256 [CHECK]: the facts (as `facts` prints them) of a host whose current is
# releases/ID with a manifest of that sha256, into $kf; with CHECK the link and the manifest
# are verified first (returns 1 if they differ). Shell builtins and, with CHECK, one
# sha256sum: the common case costs no readlink and no second pass over the manifest.
known_facts() {
  kf="current:releases/$1"
  if [ -n "${3:-}" ]; then
    # shellcheck disable=SC3013 # test -ef: dash, bash and busybox sh all have it
    if ! { [ -L "$cur" ] && [ "$cur" -ef "$root/releases/$1" ] &&
      [ -f "$root/releases/$1/$M" ]; }; then
      return 1
    fi
    sha256sum -c --status - 2>/dev/null <<KNOWN || return 1
$2  $root/releases/$1/$M
KNOWN
  fi
  for _kd in "$root"/releases/*; do
    if [ -d "$_kd" ] && [ ! -L "$_kd" ] && [ ! -L "$root/$UNSWITCHED${_kd##*/}" ]; then
      kf="$kf
release:${_kd##*/}"
    fi
  done
  kf="$kf
manifest-same:$2"
}

gone() { [ ! -e "$1" ] && [ ! -L "$1" ]; }

# -- guard ------------------------------------------------------------------------------------
if [ -n "$STAGE_GUARD" ]; then
  # staged from the facts the caller expects: anything else, and nothing is touched
  if ! known_facts "$STAGE_PREV" "$STAGE_GUARD" check || [ "$kf" != "$STAGE_EXPECT" ]; then
    cat >/dev/null
    printf '%s\n' quayside-facts-mismatch
    facts "$root" "$STAGE_GUARD"
    exit 10
  fi
fi

# -- current must be a symlink this script can replace ------------------------------------------
if [ -e "$cur" ] && [ ! -L "$cur" ]; then
  what="not a symlink"
  if [ -d "$cur" ]; then what="a directory, not a symlink"; fi
  fail "current is $what (made by hand?): move it away (cd $root &&" \
    "mv current current.by-hand) and deploy again; nothing was changed"
fi

# -- prepare ----------------------------------------------------------------------------------
{ [ -d "$root/releases" ] && [ -d "$shared" ]; } || mkdir -p -- "$root/releases" "$shared"
case $STAGE_MODE in
  prev)
    [ -d "$prev" ] || fail "previous release $prev does not exist"
    partial=1
    gone "$new" || rm -rf -- "$new"
    # the hard-link copy of $prev the host made after the last deploy (without a manifest),
    # else one made now; either way the new release has no manifest until it is sealed
    next=$root/$NEXT$STAGE_PREV
    if ! { [ -d "$next" ] && mv -T -- "$next" "$new" 2>/dev/null; }; then
      cp -al -T -- "$prev" "$new"
    fi
    if ! { gone "$new/$M" && gone "$new/$M.new"; }; then rm -f -- "$new/$M" "$new/$M.new"; fi
    ;;
  fresh)
    partial=1
    gone "$new" || rm -rf -- "$new"
    mkdir -p -- "$new"
    ;;
  keep)
    [ -d "$new" ] || fail "release $new does not exist"
    partial=1
    ;;
  *) fail "unknown stage mode $STAGE_MODE" ;;
esac
# not yet switched, until the switch renames this link over current: a run killed before that
# (in its pre-switch hooks) leaves a release the next switch removes. A sealed release kept as
# it is (mode keep, unmarked) has served before: it is not marked
if [ ! -L "$mark" ] && [ ! -f "$new/$M" ]; then ln -sfn -- "$link" "$mark"; fi
cd -- "$new"
while [ "$nrm" -gt 0 ]; do
  if ! under_link "$1"; then rm -rf -- "$1"; fi
  shift
  nrm=$((nrm - 1))
done
pruned=
while [ "$nprune" -gt 0 ]; do
  pruned="$pruned $1"
  shift
  nprune=$((nprune - 1))
done

# -- extract ----------------------------------------------------------------------------------
# head -c reads exactly the payload: what follows it on stdin is the controller's go
case $STAGE_EXTRACT in
  tar)
    head -c "$STAGE_PAYLOAD_BYTES" | tar -x -f - --no-same-owner -C "$new" ||
      fail "the payload for $new is not a complete tar (the controller stopped sending?)"
    ;;
  manifest) head -c "$STAGE_PAYLOAD_BYTES" >"$new/$M.new" ;;
esac
if [ -n "$STAGE_PATCH" ]; then
  # the new manifest = head of the previous one + the changed middle (an argument, or sent in
  # the tar) + its tail; checked unless the guard has just checked the previous one
  P=${STAGE_PATCH%%:*} rest=${STAGE_PATCH#*:}
  S=${rest%%:*} sum=${rest#*:}
  case $STAGE_PATCH_MIDDLE in
    =*)
      {
        head -c "$P" -- "$prev/$M"
        printf '%s' "${STAGE_PATCH_MIDDLE#=}"
        tail -c "$S" -- "$prev/$M"
      } >"$new/$M.new"
      ;;
    *)
      {
        head -c "$P" -- "$prev/$M"
        cat -- "$new/$M.lit"
        tail -c "$S" -- "$prev/$M"
      } >"$new/$M.new"
      rm -f -- "$new/$M.lit"
      ;;
  esac
  if [ -z "$STAGE_GUARD" ]; then
    echo "$sum  $new/$M.new" | sha256sum -c --status - || fail "manifest patch did not apply"
  fi
fi

# -- link shared paths, seal ------------------------------------------------------------------
for p do
  if under_link "$p"; then
    echo "quayside: cannot link shared path $p: a parent directory is a symlink" >&2
    exit 4
  fi
  rm -rf -- "$p"
  case $p in */*) mkdir -p -- "${p%/*}" "$shared/${p%/*}" ;; esac
  ln -sfn -- "$shared/$p" "$p"
done
sealed=
if [ -f "$new/$M.new" ]; then
  mv -f -- "$new/$M.new" "$new/$M"
  sealed=1
fi

# -- commit, switch, prune, next --------------------------------------------------------------
if [ "$STAGE_SWITCH" = 1 ]; then
  [ -f "$new/$M" ] || fail "release $new has no manifest; current not switched"
  go=
  IFS= read -r go || :
  if [ "$go" != "quayside-commit $STAGE_NEW" ]; then
    echo "quayside: no go from the controller after the payload (${go:-end of input}):" \
      "release $STAGE_NEW removed, current not switched" >&2
    exit 5
  fi
  if [ -n "$STAGE_GUARD" ]; then
    was="releases/$STAGE_PREV" # checked by the guard
  else
    was=$(readlink -- "$cur") || was=
  fi
  # the mark is the link current becomes (made at prepare: no extra process here)
  [ -L "$mark" ] || ln -sfn -- "$link" "$mark"
  mv -T -- "$mark" "$cur"
  partial=
  echo "switched:$was"
  cd /
  for id in $pruned; do
    case $id in "$STAGE_NEW" | "${was##*/}") continue ;; esac
    rm -rf -- "$root/releases/$id" "$root/${NEXT:?}$id"
  done
  # what interrupted runs left: release dirs still marked not yet switched, release dirs
  # never sealed (no manifest) and temp links
  for d in "$root/$UNSWITCHED"*; do
    [ -L "$d" ] || continue
    id=${d#"$root/$UNSWITCHED"}
    case $id in "$STAGE_NEW" | "${was##*/}") rm -f -- "$d" ;; *)
      if is_release_id "$id"; then rm -rf -- "$root/releases/$id" "$root/${NEXT:?}$id"; fi
      rm -f -- "$d"
      ;;
    esac
  done
  for d in "$root"/releases/*; do
    id=${d##*/}
    case $id in "$STAGE_NEW" | "${was##*/}") continue ;; esac
    if is_release_id "$id" && [ -d "$d" ] && [ ! -L "$d" ] && [ ! -e "$d/$M" ]; then
      rm -rf -- "$d" "$root/${NEXT:?}$id"
    fi
  done
  for d in "$root"/.current.tmp-*; do
    if [ -L "$d" ]; then rm -f -- "$d"; fi
  done
  if [ -n "$STAGE_NEXT_DELAY" ]; then
    # the next deploy's starting point, made in the background once this release has settled
    # (past the post-switch hooks and health check) and only if it still serves: a hard-link
    # copy of it without the manifest, at the lowest priority, renamed into place when complete
    (
      trap - EXIT
      trap '' HUP
      sleep "$STAGE_NEXT_DELAY"
      cd -- "$root" || exit 0
      [ "$(readlink -- "$cur" 2>/dev/null)" = "$link" ] || exit 0
      # Linux shares CPU time between sessions before nice applies within one (autogroups):
      # this session (only this job is left in it) gets the lowest share too
      { echo 19 >/proc/self/autogroup; } 2>/dev/null || :
      keep=$NEXT$STAGE_NEW
      for d in "$NEXT"*; do
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
partial=

# -- facts after ------------------------------------------------------------------------------
if [ -n "$STAGE_FACTS_AFTER" ]; then
  printf '%s\n' quayside-facts-after
  if [ "$STAGE_SWITCH" = 1 ] && [ -n "$sealed" ]; then
    known_facts "$STAGE_NEW" "$STAGE_FACTS_AFTER" # the manifest this script has just sealed
    printf '%s\n' "$kf"
  else
    facts "$root" "$STAGE_FACTS_AFTER"
  fi
fi
exit 0
