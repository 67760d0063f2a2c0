# Quayside: `make up` runs the platform, `make test` runs the test suite.
SHELL := /bin/bash
UV := $(shell infra/scripts/ensure-uv.sh)
PYTEST_WORKERS ?= 2

.PHONY: up test lint typecheck pytest bench sync packages clean

# --compile-bytecode: the installed packages' .pyc files are written once here (seconds, and
# about 0.5 s when nothing changed), so no command compiles Prefect, SQLAlchemy or pydantic from
# source at every start when Python may not write bytecode (PYTHONDONTWRITEBYTECODE); compileall
# does the same for Quayside's own modules (installed editable: 0.35 -> 0.22 s of CPU for
# `quayside releases`).
sync:
	$(UV) sync --frozen --compile-bytecode
	$(UV) run --frozen python -m compileall -q quayside

up: sync
	$(UV) run quayside up

packages:
	infra/scripts/ensure-packages.sh infra/apt-packages.txt

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	@command -v shellcheck >/dev/null || \
	  { echo "shellcheck is missing: make packages installs it (infra/apt-packages.txt)" >&2; exit 1; }
	infra/scripts/shell-programs.sh | xargs -d '\n' shellcheck

typecheck: sync
	$(UV) run mypy

# --dist loadgroup: each xdist_group runs whole on one worker (the two platform groups each
# start one platform; testbed/xdist_groups.py keeps that working on pytest 9.2);
# --durations: the slowest tests in every log, to rebalance the groups by
pytest: sync
	$(UV) run pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=40

test: packages sync lint typecheck pytest

bench: packages sync
	$(UV) run python -m bench

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache bench/.work
