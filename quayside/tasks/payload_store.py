"""Keeps a release payload in the artifact store and fetches it back for a rollback."""

from __future__ import annotations

import shutil
import threading
import zlib
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from quayside.artifacts.delta import StoredPayload, get_payload, put_payload
from quayside.deploy.errors import DeployError
from quayside.errors import QuaysideError
from quayside.manifest import MANIFEST_FILENAME, Manifest


@task(task_run_name="store {key}", cache_policy=NO_CACHE)
def store_payload(
    key: str, payload_dir: Path, manifest: Manifest, base: StoredPayload | None = None
) -> tuple[str, StoredPayload]:
    """Keep the payload in the artifact store so the release can be restored after pruning:
    whole, or as a delta against ``base`` (see ``quayside.artifacts.delta``).

    Args:
        key: the artifact key (``<app>/<env>/<release id>``).
        payload_dir: the built payload (with its manifest file).
        manifest: the payload's manifest.
        base: a stored payload to store only the difference against (``delta_base``).

    Returns:
        The artifact's location (``file://`` or ``s3://``) and what the next release of the
        app/environment may use as its delta base.

    Raises:
        quayside.errors.QuaysideError: the store refused it.

    Example:
        >>> store_payload("web/prod/20240501T120001Z-0123456789ab", Path("/tmp/b"), manifest)
    """
    from quayside.artifacts import store_from_env

    store = store_from_env()
    if base is None and store.compress and not worth_compressing(payload_dir):
        store.compress = False  # this instance only: gzip would cost CPU and save nothing
        get_run_logger().info("payload looks incompressible: stored as a plain tar")
    ref, stored = put_payload(store, key, payload_dir, manifest, base)
    if base is not None:
        get_run_logger().info(
            "payload stored as a delta of %s (%d bytes, chain depth %d)",
            base.key,
            ref.size,
            stored.depth,
        )
    return str(ref.location), stored


#: sampled for :func:`worth_compressing`: this many files, this many bytes from each
_SAMPLE_FILES = 32
_SAMPLE_BYTES = 64 * 1024


def worth_compressing(payload_dir: Path, *, ratio: float = 0.9) -> bool:
    """Whether gzip is likely to shrink the payload by more than ``1 - ratio``: the first
    bytes of up to 32 files spread over the payload (by its manifest) are compressed at gzip
    level 1. Media, archives and other already-compressed payloads say no."""
    try:
        manifest = Manifest.from_json((payload_dir / MANIFEST_FILENAME).read_text())
    except (OSError, QuaysideError):
        return True
    files = [p for p, e in manifest.items() if e.kind == "file" and e.size > 0]
    if not files:
        return True
    step = max(1, len(files) // _SAMPLE_FILES)
    raw = packed = 0
    for rel in files[::step][:_SAMPLE_FILES]:
        try:
            with open(payload_dir / rel, "rb") as handle:
                data = handle.read(_SAMPLE_BYTES)
        except OSError:
            continue
        raw += len(data)
        packed += len(zlib.compress(data, 1))
    return raw == 0 or packed < raw * ratio


class PayloadCache:
    """Fetches a release payload from the artifact store once, for every host that needs it."""

    def __init__(self, key: str | None, dest: Path) -> None:
        self.key = key
        self.dest = dest
        self._lock = threading.Lock()
        self._ready = False

    def __call__(self) -> Path:
        with self._lock:
            if not self._ready:
                if not self.key:
                    raise DeployError("the release is not on the host and has no stored artifact")
                from quayside.artifacts import store_from_env

                shutil.rmtree(self.dest, ignore_errors=True)
                get_payload(store_from_env(), self.key, self.dest)
                self._ready = True
        return self.dest
