"""The output of an image app's serving containers, every host's merged line by line as the
hosts write it: the last ``tail`` lines, then (``follow``) what they print until they stop or
the reader closes the pump. One implementation for ``quayside logs [--follow]`` and the
gateway's ``GET /api/apps/{app}/{env}/logs[?follow=true]``.

Each host's engine stream is read by a thread of its own into one queue; the reader takes lines
with a timeout, so it can notice Ctrl-C or a client that went away, and closing the pump
closes the engine streams (the threads end at once, not at the next line).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from quayside.images import containers_docker as engine
from quayside.images.containers_ops import open_hosts
from quayside.inventory.resolve import Target


@dataclass(frozen=True)
class LogLine:
    """One line a host's serving container printed (``error``: that host's stream broke)."""

    host: str
    text: str
    error: bool = False

    def shown(self) -> str:
        """``host: text``, as ``quayside logs`` and the gateway print it."""
        return f"{self.host}: {self.text}"


class _Done:
    """A pump thread finished (its container stopped, or not following)."""


class LogPump:
    """``with LogPump(target, tail=100, follow=True) as pump: for line in pump.lines(0.5)``.

    Raises (on enter):
        quayside.images.containers_docker.ContainerError: an engine does not answer.
        quayside.errors.InputError: not an image app, or a host without ``docker:``.
    """

    def __init__(self, target: Target, *, tail: int, follow: bool) -> None:
        self.target = target
        self.tail = tail
        self.follow = follow
        #: hosts with no running container of the app (nothing to read there)
        self.idle: list[str] = []
        self._queue: queue.Queue[LogLine | _Done] = queue.Queue()
        self._streams: list[Any] = []
        self._running = 0
        self._closing = threading.Event()
        self._stack = ExitStack()

    def __enter__(self) -> LogPump:
        try:
            run, hosts = self._stack.enter_context(open_hosts(self.target))
            t = self.target
            for h in hosts:
                serving = h.state(run, t.app_name, t.env_name).serving
                if serving is None:
                    self.idle.append(h.name)
                    continue
                stream = engine.open_log_stream(
                    serving.container, follow=self.follow, tail=self.tail
                )
                self._streams.append(stream)
                self._running += 1
                threading.Thread(
                    target=self._pump, args=(h.name, stream), daemon=True,
                    name=f"logs-{h.name}",
                ).start()  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _pump(self, host: str, stream: Any) -> None:
        rest = b""
        try:
            for chunk in stream:
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    self._queue.put(LogLine(host, line.decode(errors="replace")))
            if rest:
                self._queue.put(LogLine(host, rest.decode(errors="replace")))
        except Exception as e:  # the engine went away mid-stream (not when we closed it)
            if not self._closing.is_set():
                why = f"log stream broke: {type(e).__name__}: {str(e)[:200]}"
                self._queue.put(LogLine(host, why, error=True))
        finally:
            self._queue.put(_Done())

    def lines(self, wake_s: float) -> Iterator[LogLine | None]:
        """Every line of every host as it comes; None after ``wake_s`` seconds without one
        (the reader may stop there: Ctrl-C, a client gone). Ends once every stream ended
        (every container stopped, or, not following, all was read)."""
        while self._running > 0 or not self._queue.empty():
            try:
                item = self._queue.get(timeout=wake_s)
            except queue.Empty:
                yield None
                continue
            if isinstance(item, _Done):
                self._running -= 1
                continue
            yield item

    def close(self) -> None:
        """Close the engine streams (their threads end), then the hosts' clients."""
        self._closing.set()
        for stream in self._streams:
            try:
                stream.close()
            except Exception:  # already closed by its end
                pass
        self._streams.clear()
        self._stack.close()
