"""Where a git release's payload is built and kept between runs: its build directory, the
artifact store location, the delta base (the last stored payload of the app/env) and each
host's facts after the last deploy (what the next deploy may stage against)."""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path

from prefect.logging.loggers import get_run_logger

from quayside.artifacts.delta import StoredPayload, delta_base
from quayside.deploy.release_spec import INLINE_MAX_BYTES
from quayside.manifest import Manifest
from quayside.scratch import BackgroundRemoval, sweep_stale
from quayside.scratch_owner import claim, sweep_dead
from quayside.settings import Settings
from quayside.tasks.ledger import current_flow_run_id

INLINE_ENV = "QUAYSIDE_DEPLOY_INLINE_MAX_BYTES"
"""Environment variable: changes up to this many bytes travel inline (a tar in memory, over
the executor's SSH session); larger ones as a tar file streamed through OpenSSH."""


def inline_max() -> int:
    """The inline limit in bytes (``QUAYSIDE_DEPLOY_INLINE_MAX_BYTES`` or the default)."""
    value = os.environ.get(INLINE_ENV)
    return int(value) if value and value.isdigit() else INLINE_MAX_BYTES


def build_dir(settings: Settings, app: str, env: str, release_id: str, *, locked: bool) -> Path:
    """A fresh build directory for this run, claimed for it (an owner file beside it:
    :mod:`quayside.scratch_owner`), after removing what killed runs left beside it.

    Args:
        settings: where the builds are.
        app: the app.
        env: the environment.
        release_id: the release directory name.
        locked: this run holds the app/env deploy lock: the build directories of app/env
            runs that are over in Prefect go too (no live run of app/env has one without the
            lock). Without it (a dry run), only those whose process is gone.

    Returns:
        The path (not created yet).
    """
    path = settings.home / "builds" / f"{app}-{env}-{release_id}-{time.monotonic_ns()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    removal = BackgroundRemoval()
    removed = sweep_dead(
        path.parent, app=app, env=env, runs_over=runs_over if locked else None, removal=removal
    )
    if removed:
        get_run_logger().info(
            "removing %d build director%s left by runs that ended: %s",
            len(removed),
            "y" if len(removed) == 1 else "ies",
            ", ".join(p.name.removesuffix(".owner") for p in removed),
        )
    sweep_stale(path.parent)  # those without an owner file (older releases of Quayside)
    claim(path, app, env, current_flow_run_id())
    return path


def runs_over(run_ids: Collection[str]) -> set[str]:
    """Those of ``run_ids`` that are over in Prefect (final, or gone); none if Prefect does
    not answer (their build directories then wait for the next deploy, or the age sweep)."""
    from quayside.runs.liveness import runs_life

    try:
        lives = runs_life(run_ids)
    except Exception as e:  # PrefectUnavailable, or an API error: the sweep is best effort
        get_run_logger().warning("cannot ask Prefect which runs are over: %s", e)
        return set()
    return {run_id for run_id, life in lives.items() if life.over}


def stream_dir_of(build: Path) -> Path:
    """Where the deploy of ``build`` writes its large tar streams (removed with it)."""
    return build.with_name(build.name + ".stream")


def payload_index(settings: Settings, app: str, env: str) -> Path:
    """Where the last stored payload of app/env is remembered (the next delta's base)."""
    return settings.payloads_dir / app / f"{env}.json"


def host_facts_path(settings: Settings, app: str, env: str) -> Path:
    """Where each host's facts after the last deploy of app/env are kept."""
    return settings.host_facts_dir / app / f"{env}.json"


def usable_delta_base(manifest: Manifest, candidate: StoredPayload | None) -> StoredPayload | None:
    """The stored payload to keep this one as a delta of, if that is worth it (None when the
    store is unavailable: storing reports it)."""
    if candidate is None:
        return None
    try:
        from quayside.artifacts import store_from_env

        return delta_base(store_from_env(), manifest, candidate)
    except Exception as e:  # the store is unavailable
        get_run_logger().warning("cannot use %s as a delta base: %s", candidate.key, e)
        return None


def store_location(key: str) -> str | None:
    """Where the payload under ``key`` will be kept (None: the artifact store is unavailable)."""
    try:
        from quayside.artifacts import store_from_env

        return str(store_from_env().location(key))
    except Exception as e:  # ImportError or a store configuration error
        get_run_logger().warning("artifact store unavailable: %s", e)
        return None
