"""The one implementation of "do this on many hosts": bounded parallelism, batches, and per-host
results collected instead of stopping at the first failure (fabric's GroupResult)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from quayside.errors import InputError, QuaysideError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class HostOutcome(Generic[R]):
    host: str
    value: R | None
    error: BaseException | None
    duration_s: float | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str:
        if self.error is None:
            return "ok"
        return str(self.error) if isinstance(self.error, QuaysideError) else repr(self.error)


@dataclass(frozen=True)
class GroupResult(Generic[R]):
    outcomes: tuple[HostOutcome[R], ...]

    @property
    def succeeded(self) -> list[HostOutcome[R]]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[HostOutcome[R]]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        if self.ok:
            return f"{len(self.outcomes)} host(s) ok"
        lines = [f"{len(self.failed)} of {len(self.outcomes)} host(s) failed:"]
        lines += [f"  {o.host}: {o.message}" for o in self.failed]
        return "\n".join(lines)


def run_on_hosts(
    hosts: Sequence[str],
    action: Callable[[str], R],
    *,
    max_parallel: int = 10,
) -> GroupResult[R]:
    """Run ``action(host)`` for every host, at most ``max_parallel`` at once, in input order."""
    if not hosts:
        return GroupResult(())

    def one(host: str) -> HostOutcome[R]:
        start = time.monotonic()
        try:
            value = action(host)
        except Exception as e:  # collected, reported per host
            return HostOutcome(host, None, e, time.monotonic() - start)
        return HostOutcome(host, value, None, time.monotonic() - start)

    workers = max(1, min(max_parallel, len(hosts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quayside-host") as pool:
        return GroupResult(tuple(pool.map(one, hosts)))


def batch_size(spec: int | str | None, total: int) -> int:
    """Resolve a batch spec (``5``, ``"25%"``, ``None`` = all at once) to a host count >= 1."""
    if total <= 0:
        return 1
    if spec is None:
        return total
    if isinstance(spec, int):
        if spec < 1:
            raise InputError(f"batch size must be at least 1, got {spec}")
        return min(spec, total)
    text = spec.strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            raise InputError(f"batch size {spec!r} is not a number or a percentage") from None
        if not 0 < pct <= 100:
            raise InputError(f"batch percentage must be in (0, 100], got {spec!r}")
        return max(1, math.ceil(total * pct / 100))
    try:
        return batch_size(int(text), total)
    except ValueError:
        raise InputError(f"batch size {spec!r} is not a number or a percentage") from None


def batches(items: Iterable[T], size: int) -> list[list[T]]:
    """Split ``items`` into consecutive lists of ``size`` (the last may be shorter)."""
    seq = list(items)
    return [seq[i : i + size] for i in range(0, len(seq), size)]
