"""A release run's progress artifact, advanced once per finished host."""

from __future__ import annotations

import contextvars
import threading
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact


class Progress:
    """A Prefect progress artifact advanced once per finished host (thread-safe), kept by a
    background thread: the artifact is created there, and updated at most every
    ``interval_s`` seconds with the newest value, so a host task never waits for the API
    (measured: the last host's update took 0.15-0.25 s while the server recorded the other
    task runs). :meth:`close` (or leaving the ``with`` block) sends the last value and waits
    for it, at most ``timeout_s``.

    Example:
        >>> with Progress(20, "git-deploy-progress-web-prod", "web/prod to v1.2") as progress:
        ...     progress.advance()  # once per finished host
    """

    def __init__(self, total: int, key: str, description: str, *, interval_s: float = 0.5) -> None:
        self.total = max(1, total)
        self.done = 0
        self.key = key
        self.description = description
        self.interval_s = interval_s
        self.artifact_id: UUID | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._wanted = 0.0
        self._closed = False
        context = contextvars.copy_context()  # the run's settings and API client
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="quayside-progress", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self) -> None:
        with self._lock:
            self.done += 1
            self._wanted = min(100.0, 100.0 * self.done / self.total)
            complete = self.done >= self.total
        if complete:  # the last host: send 100% now, not after the interval nor at close
            self._stop.set()
        self._wake.set()

    def close(self, timeout_s: float = 10) -> None:
        """Send the last value and stop the thread (waits at most ``timeout_s``)."""
        with self._lock:
            self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            created = create_progress_artifact(0.0, key=self.key, description=self.description)
            self.artifact_id = created if isinstance(created, UUID) else None
        except Exception as e:  # a progress bar must never fail a deploy
            get_run_logger().warning("cannot create the progress artifact: %s", e)
        sent = 0.0
        while True:
            self._wake.wait()
            with self._lock:
                value, closed = self._wanted, self._closed
                self._wake.clear()
            if value != sent and self.artifact_id is not None:
                try:
                    update_progress_artifact(self.artifact_id, value)
                except Exception:  # best effort
                    pass
            sent = value
            if closed:
                with self._lock:
                    if self._wanted == sent:
                        return
                self._wake.set()
            elif value < 100.0:
                self._stop.wait(self.interval_s)  # hosts finishing meanwhile: one update
