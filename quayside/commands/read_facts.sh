#!/bin/sh
# quayside read_facts script, version 2
#
# What a host has, and the shell functions every host-side program of a git deploy shares.
#
# Run as a file it prints a host's facts: `sh read_facts.sh ROOT [KNOWN_SHA256]`. The controller
# sends this text in two ways (quayside.commands.release, quayside.deploy.scripts):
#   - as `sh -c <text> quayside ROOT [KNOWN_SHA256]` followed by the line that calls facts
#     (read_facts): one round trip, one process;
#   - in front of quayside/deploy/stage.sh and rollback_switch.sh, which use M, facts and
#     is_release_id from here (one definition of each; run as files, they read this file).
#
# facts ROOT [KNOWN_SHA256] prints
#   current:<what ROOT/current points at, verbatim; empty when there is none>
#   release:<name>              one line per directory in ROOT/releases, but those marked
#                               not yet switched (ROOT/.quayside-unswitched-<name>: staged by
#                               a run that never switched to it; the next switch removes them)
#   manifest:<json>             the current release's manifest, when it has one, or
#   manifest-same:<sha256>      instead, when that manifest's sha256 is KNOWN_SHA256
# and returns 0. quayside.commands.release.parse_facts reads it.

# the release manifest's file name in a release dir (quayside.manifest.MANIFEST_FILENAME)
M=.quayside-manifest.json
# ROOT/<this><id>: a link marking release <id> as staged but not yet switched to
UNSWITCHED=.quayside-unswitched-

facts() {
  _fc=$(readlink -- "$1/current") || _fc=
  printf 'current:%s\n' "$_fc"
  if [ -d "$1/releases" ]; then
    for _fd in "$1"/releases/*; do
      if [ -d "$_fd" ] && [ ! -L "$_fd" ] && [ ! -L "$1/$UNSWITCHED${_fd##*/}" ]; then
        printf 'release:%s\n' "${_fd##*/}"
      fi
    done
  fi
  _fi=${_fc##*/}
  _fm="$1/releases/$_fi/$M"
  if [ -n "$_fi" ] && [ -f "$_fm" ]; then
    if [ -n "${2:-}" ] && echo "$2  $_fm" | sha256sum -c --status - 2>/dev/null; then
      printf 'manifest-same:%s\n' "$2"
    else
      printf 'manifest:'
      cat -- "$_fm"
      printf '\n'
    fi
  fi
}

# is_release_id NAME: whether NAME looks like a release id (only those are ever deleted)
is_release_id() {
  case $1 in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-[0-9a-f]*)
      case ${1#*Z-} in *[!0-9a-f]*) return 1 ;; esac
      [ "${#1}" -ge 24 ] && [ "${#1}" -le 29 ]
      ;;
    *) return 1 ;;
  esac
}

# run as a file: print the facts (sent by the controller, $0 is "quayside": only definitions)
case $0 in *read_facts.sh) set -u; facts "$1" "${2:-}"; exit 0 ;; esac
