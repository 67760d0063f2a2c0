"""The deploy lock as a context manager: acquire (refuse, or wait a bounded time), renew the
lease in the background while the block runs, release at the end whatever happens."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from quayside.errors import LockHeldError, QuaysideError
from quayside.ledger import locks

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 300.0


@contextmanager
def deploy_lock(
    engine: Engine,
    app: str,
    env: str,
    *,
    holder: str,
    flow_run_id: str | None,
    version: str | None,
    lease_s: float = DEFAULT_LEASE_S,
    wait_s: float = 0.0,
    poll_s: float = 1.0,
) -> Iterator[None]:
    """Hold the deploy lock of ``app``/``env`` for the duration of the block.

    Args:
        engine: the ledger.
        app: app name.
        env: environment name.
        holder: shown to whoever is refused (``alice via flow run <name>``).
        flow_run_id: the run holding it (a retry of the same run gets it back).
        version: what is being released, shown to whoever is refused.
        lease_s: lease length; renewed every third of it while the block runs, so a crashed
            holder's lock expires within ``lease_s``.
        wait_s: 0 refuses at once when the lock is held (policy "refuse"); more waits up to
            that many seconds (policy "wait").
        poll_s: how often to retry while waiting.

    Raises:
        LockHeldError: the lock is held by another run (after ``wait_s``); names the holder.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            locks.acquire(
                engine,
                app,
                env,
                holder,
                flow_run_id=flow_run_id,
                version=version,
                lease_s=lease_s,
            )
            break
        except LockHeldError:
            if time.monotonic() + poll_s > deadline:
                raise
            time.sleep(poll_s)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_s / 3):
            try:
                locks.renew(engine, app, env, flow_run_id=flow_run_id, lease_s=lease_s)
            except QuaysideError as e:
                log.warning("could not renew the deploy lock of %s/%s: %s", app, env, e)

    renewer = threading.Thread(target=renew, name="quayside-lock-renew", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(5)
        try:
            locks.release(engine, app, env, flow_run_id=flow_run_id)
        except QuaysideError as e:
            log.warning("could not release the deploy lock of %s/%s: %s", app, env, e)
