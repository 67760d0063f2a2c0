"""Deploy roots per timed run, and the check that a run really deployed.

Every timed run deploys into a new, empty deploy root on every host, so a run never waits for
the previous one's files to be deleted; old roots are deleted between tools, untimed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from bench.git_deploy.app import CHANGED_FILE, FILES
from bench.git_deploy.fleet import Host, each_host
from bench.harness import log, run_argv


class Roots:
    """A new deploy root per timed run, ``<mount>/<label>`` on every host, so a run never
    waits for the previous one's files to be deleted; :meth:`purge` deletes them between
    tools (untimed)."""

    def __init__(self, mount: Path, hosts: Sequence[Host]) -> None:
        self.mount = mount
        self.hosts = list(hosts)
        self.label = "unset"
        self.count = 0

    def new(self, kind: str) -> str:
        self.count += 1
        return self.use(f"{kind}-{self.count}")

    def use(self, label: str) -> str:
        self.label = label
        return self.path

    @property
    def path(self) -> str:
        """The current deploy root as every host sees it."""
        return f"{self.mount}/{self.label}"

    def local(self, host: Host) -> Path:
        """The current deploy root of ``host`` as seen from here."""
        return host.root / self.label

    def wait_prepared(self, timeout_s: float = 60) -> float:
        """Wait until every host holds the copy of its current release that Quayside's hosts
        make in the background after a switch (``scripts.NEXT_PREFIX``): the hosts are idle
        then, as between two deploys. Returns the seconds waited (untimed)."""
        from quayside.deploy.scripts import NEXT_PREFIX

        started = time.perf_counter()
        pending = list(self.hosts)
        while pending:
            pending = [
                h
                for h in pending
                if not any(
                    p.is_dir() and ".tmp-" not in p.name
                    for p in self.local(h).glob(f"{NEXT_PREFIX}*")
                )
            ]
            if not pending:
                break
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"{len(pending)} host(s) did not prepare the next release")
            time.sleep(0.02)
        return time.perf_counter() - started

    def purge(self) -> None:
        """Delete every deploy root on every host (one ``rm -rf`` per host, in parallel;
        again if a host's background copy was still writing into one)."""
        started = time.perf_counter()

        def purge_host(h: Host) -> None:
            for attempt in range(20):
                entries = [str(p) for p in h.root.iterdir()]
                if not entries:
                    return
                try:
                    run_argv(["rm", "-rf", "--", *entries])
                    return
                except Exception:
                    if attempt == 19:
                        raise
                    time.sleep(0.25)

        each_host(self.hosts, purge_host)
        log(f"  (deleted old deploy roots in {time.perf_counter() - started:.0f} s, untimed)")


def verify(hosts: Sequence[Host], roots: Roots, tree: Path) -> None:
    """Every host's ``current`` (in the current deploy root) holds ``tree``: the changed file's
    bytes on every host, the file count on the last one. A tool that did less would fail."""
    expected = (tree / CHANGED_FILE).read_bytes()
    for host in hosts:
        got = (roots.local(host) / "current" / CHANGED_FILE).read_bytes()
        if got != expected:
            raise AssertionError(f"{host.name}: current/{CHANGED_FILE} is not the expected one")
    last = roots.local(hosts[-1]) / "current"
    count = sum(1 for p in last.rglob("*.dat") if p.is_file())
    if count != FILES:
        raise AssertionError(f"{hosts[-1].name}: {count} data files in current, want {FILES}")
