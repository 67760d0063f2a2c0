#!/usr/bin/env bash
# Install the Debian packages listed in infra/apt-packages.txt that are missing.
# Usage: infra/scripts/ensure-packages.sh [LIST_FILE]
set -euo pipefail
list="${1:-$(dirname "$0")/../apt-packages.txt}"
missing=()
while read -r pkg _; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done < "$list"
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "error: need root to install ${missing[*]}; install them and re-run" >&2; exit 1
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts some services on install; the test harness starts its own instances.
for svc in ssh postgresql nginx dnsmasq docker-registry; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  fi
done
