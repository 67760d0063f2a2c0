"""Executors for one run's hosts, shared by the flow and its per-host tasks, so that the SSH
connections can be opened early: in the background while the flow resolves and builds (one
core mostly idle then), ready when the host tasks start.

The tasks use :meth:`Connections.get` instead of creating an executor, and close it when they
are done, as before; the flow closes whatever is left (hosts of batches that never started).
A warm-up that fails is forgotten: the host's task connects again and reports the error as
it always did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType

from quayside.executors.base import Executor
from quayside.executors.factory import executor_for
from quayside.executors.ssh import SSHExecutor
from quayside.inventory.models import Host

log = logging.getLogger(__name__)


class Connections:
    """One executor per inventory host of a run, created on first use; thread-safe.

    Args:
        hosts: inventory name -> host entry, for the hosts the run may touch.

    Example:
        >>> with Connections(dict(target.hosts)) as pool:
        ...     pool.warm(first_batch)   # returns at once
        ...     ...                      # build the payload meanwhile
        ...     pool.get("web-1").run(["true"])
    """

    def __init__(self, hosts: Mapping[str, Host]) -> None:
        self._hosts = dict(hosts)
        self._lock = threading.Lock()
        self._executors: dict[str, Executor] = {}
        self._threads: list[threading.Thread] = []

    def get(self, name: str) -> Executor:
        """The executor of host ``name`` (the same one for every caller).

        Raises:
            KeyError: ``name`` is not one of the run's hosts.
        """
        with self._lock:
            executor = self._executors.get(name)
            if executor is None:
                executor = executor_for(name, self._hosts[name])
                self._executors[name] = executor
            return executor

    def warm(self, names: Iterable[str]) -> int:
        """Open the SSH connections of ``names`` in background threads and return at once
        (how many were started). A command run meanwhile waits for its host's connection
        instead of opening a second one."""
        started = 0
        for name in names:
            executor = self.get(name)
            if not isinstance(executor, SSHExecutor):
                continue
            thread = threading.Thread(
                target=_connect_quietly, args=(executor,), name=f"quayside-warm-{name}"
            )
            thread.daemon = True
            thread.start()
            with self._lock:
                self._threads.append(thread)
            started += 1
        return started

    def close(self) -> None:
        """Close every connection (safe to call twice; a later ``get`` reconnects)."""
        with self._lock:
            executors = list(self._executors.values())
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()  # a connection still being opened is closed after it opens
        for executor in executors:
            close = getattr(executor, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _connect_quietly(executor: SSHExecutor) -> None:
    try:
        executor.transport()
    except Exception as e:  # the host's task connects again and reports it
        log.debug("%s: early connection failed: %s", executor.name, e)
