"""Runs the gateway started recently, by idempotency key: a duplicate delivery (GitLab retries,
a hook fired twice, a script re-posting) is answered from memory instead of two Prefect API
round trips. Prefect's own idempotency key stays the authority: a miss here (another gateway
process, an entry past its time) still finds the one existing run through the API."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from quayside.runs import RunHandle


class RecentRuns:
    """A bounded, thread-safe map idempotency key -> RunHandle whose entries expire."""

    def __init__(
        self,
        ttl_s: float = 600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, RunHandle]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> RunHandle | None:
        """The run started under ``key``, if remembered and not expired."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            stored_at, handle = found
            if self._clock() - stored_at > self.ttl_s:
                del self._entries[key]
                return None
            return handle

    def put(self, key: str, handle: RunHandle) -> None:
        """Remember ``handle`` under ``key``; the oldest entry goes when full."""
        with self._lock:
            self._entries[key] = (self._clock(), handle)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
