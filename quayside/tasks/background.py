"""Run a blocking call (an API call whose answer nothing waits for) in a thread, inside the
caller's Prefect run context, while the flow goes on; join it before the run ends."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any


class InBackground:
    """``fn(*args)`` started in a thread with a copy of the caller's context (the flow run,
    its settings and API client); :meth:`join` waits and re-raises what it raised.

    Example:
        >>> publishing = InBackground(create_table_artifact, rows)
        >>> ...  # ledger writes meanwhile
        >>> publishing.join()
    """

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._error: BaseException | None = None
        context = contextvars.copy_context()

        def run() -> None:
            try:
                context.run(fn, *args)
            except BaseException as e:  # handed to join()
                self._error = e

        self._thread = threading.Thread(target=run, name="quayside-background", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the call; raise what it raised (``TimeoutError`` if still running)."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("the background call did not finish in time")
        if self._error is not None:
            raise self._error
