#!/usr/bin/env bash
# Print the path of a working `uv`, installing it from PyPI with pip if there is none.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
for candidate in "$HOME/.local/bin/uv"; do
  if [[ -x "$candidate" ]]; then echo "$candidate"; exit 0; fi
done
python3 -m pip install --quiet --user uv >&2 || python3 -m pip install --quiet uv >&2
if command -v uv >/dev/null 2>&1; then command -v uv; else echo "$HOME/.local/bin/uv"; fi
