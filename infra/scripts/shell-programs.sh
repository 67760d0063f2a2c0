#!/bin/sh
# Print every shell program in the repository, one per line: *.sh files and files whose first
# line runs sh, bash or dash (git hooks, .ci/run). `make lint` runs shellcheck on them.
set -eu
cd "$(dirname "$0")/../.."
find . \( -path ./.venv -o -path ./.git -o -path ./bench/.work -o -name node_modules \
  -o -name __pycache__ -o -name .mypy_cache -o -name .ruff_cache -o -name .pytest_cache \) \
  -prune -o -type f -print0 |
  xargs -0 awk 'FNR == 1 {
      if (FILENAME ~ /\.sh$/ || /^#!.*[\/ ](ba|da)?sh( |$)/) print substr(FILENAME, 3)
      nextfile
    }' |
  sort
