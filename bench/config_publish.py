"""Config publish: one changed dnsmasq hosts file to N dnsmasq servers (``--hosts``, default
20), each a real dnsmasq on its own sshd host's 127.0.0.x address.

One result, ``config_publish``:

- ``quayside_s``: the ``config-publish`` flow called in-process against a running ``quayside
  up`` (render, read every host, plan and diff, lock, stage + ``dnsmasq --test``, symlink swap,
  SIGHUP, every changed record asked of every server with dnspython, ledger), median of
  ``--repeat`` publishes, each changing one record;
- ``serial_loop_s``: the seed's approach (``dns_publish.py`` run host by host): per host
  ``rsync`` the file over ssh, ``ssh`` the reload, ``dig`` the changed name; no check, no
  backup, no restore; ``ratio_vs_serial_loop`` = serial / Quayside;
- ``restore_s``: per host, putting the previous set back after a failed verify (swap back,
  SIGHUP, the old answers checked), median over the hosts;
- ``dns_queries_sent`` / ``dns_queries_failed``: ``dnsperf`` at 200 queries/s against every
  server during 20 consecutive publishes (lost = failed).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from bench.harness import Options, Timing, ToolResult, log, make_entry, reproduce_command

NAME = "config_publish"
COMMAND = reproduce_command(NAME)
RESULTS = ("config_publish",)
APP, ENV, SERVICE = "dnsbench", "bench", "dnsmasq"
FIRST_ADDRESS = "127.0.0.101"
QUERIES_PER_S = 200
PUBLISHES_UNDER_LOAD = 20
GOAL_S, GOAL_RATIO, GOAL_RESTORE_S = 1.5, 5.0, 0.5


def hosts_text(n: int) -> str:
    """The hosts file of publish ``n``: 50 fixed records and ``api.internal`` moving."""
    fixed = "".join(f"10.8.0.{i} host-{i}.internal\n" for i in range(1, 51))
    return f"{fixed}10.9.{n // 250}.{n % 250 + 1} api.internal\n"


def api_address(n: int) -> str:
    return f"10.9.{n // 250}.{n % 250 + 1}"


class Bench:
    """The fleet, the dnsmasq servers, the platform and the config store, set up once."""

    def __init__(self, stack: ExitStack, work: Path, count: int) -> None:
        from bench.git_deploy.quayside_runs import Quayside
        from quayside.config.backend import open_store
        from quayside.ledger.db import make_engine
        from testbed.dnsmasq import DnsmasqFleet
        from testbed.platform import Platform
        from testbed.sshd import DEPLOY_USER, SshdFleet, find_binary

        log(f"starting {count} sshd hosts and dnsmasq servers")
        # a deploy login with a plain /bin/sh (root's login shell may read rc files per command)
        self.fleet = SshdFleet(work / "sshd", count, FIRST_ADDRESS, login=DEPLOY_USER)
        stack.callback(self.fleet.close)
        binary = find_binary("dnsmasq")
        if binary is None:
            raise RuntimeError("dnsmasq is not installed (apt-get install dnsmasq)")
        hosts = [(h.name, h.address) for h in self.fleet]
        self.dns = DnsmasqFleet(work / "dns", hosts, binary, user=DEPLOY_USER)
        stack.callback(self.dns.stop)
        self.dns.start(hosts_text(0))
        inventory = work / "quayside.yaml"
        environment = {
            "hosts": [h.name for h in self.fleet],
            "max_parallel": count,
            "config": {SERVICE: self.dns.service()},
        }
        apps = {APP: {"environments": {ENV: environment}}}
        inventory.write_text(yaml.safe_dump({"hosts": host_entries(self.fleet), "apps": apps}))
        self.platform = Platform(work / "home", inventory)
        stack.callback(self.platform.stop)
        log("starting the platform (quayside up)")
        self.platform.start()
        Quayside(self.platform)  # the environment the in-process flow calls need
        self.store = open_store(make_engine())
        self.version = 0

    def save(self, n: int) -> None:
        from quayside.config import items
        from quayside.config.address import ItemAddress

        address = ItemAddress(APP, ENV, SERVICE, "hosts")
        items.save(self.store, address, hosts_text(n), author="bench", base_version=self.version)
        self.version += 1

    def publish(self) -> dict[str, Any]:
        from quayside.flows.config_publish import config_publish

        result: dict[str, Any] = asyncio.run(
            config_publish(app=APP, env=ENV, service=SERVICE, requested_by="bench")  # type: ignore[arg-type]
        )
        if result.get("result") != "published" or result.get("failed"):
            raise RuntimeError(f"publish did not land everywhere: {result}")
        return result

    def check(self, n: int) -> None:
        want = {api_address(n)}
        wrong = [s.name for s in self.dns if s.query("api.internal") != want]
        if wrong:
            raise RuntimeError(f"{', '.join(wrong)} do not answer {want}")


def host_entries(fleet: Any) -> dict[str, dict[str, Any]]:
    """The inventory's hosts for the sshd fleet."""
    return {
        h.name: {"address": h.address, "port": h.port, "user": h.user,
                 "key_file": str(h.key_file), "known_hosts": str(h.known_hosts)}
        for h in fleet
    }  # fmt: skip


def _ssh(h: Any) -> list[str]:
    known = f"UserKnownHostsFile={h.known_hosts}"
    return ["ssh", "-i", str(h.key_file), "-p", str(h.port), "-o", "BatchMode=yes",
            "-o", known, "-o", "StrictHostKeyChecking=yes"]  # fmt: skip


def serial_loop(bench: Bench, n: int, work: Path) -> None:
    """The seed's dns_publish.py run host by host: rsync, ssh reload, dig."""
    source = work / "hosts"
    source.write_text(hosts_text(n))
    for h, server in zip(bench.fleet, bench.dns, strict=True):
        remote = f"{h.user}@{h.address}:{server.conf}/hosts"
        subprocess.run(["rsync", "-I", "-e", " ".join(_ssh(h)), str(source), remote], check=True)
        subprocess.run([*_ssh(h), h.user + "@" + h.address, "sh", str(server.ctl), "reload"],
                       check=True)  # fmt: skip
        deadline = time.monotonic() + 5
        while True:
            out = subprocess.run(
                ["dig", "+short", f"@{h.address}", "-p", str(server.port), "api.internal"],
                check=True, capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            if out == [api_address(n)]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{h.name}: dig answers {out} after the serial loop's reload")
            time.sleep(0.01)


def restore_times(bench: Bench, n: int) -> list[float]:
    """Per host: after publish ``n``, put publish ``n - 1``'s set back as a failed verify
    does (swap back, SIGHUP, old answers checked); then forward again (untimed)."""
    from quayside.config.dns_records import changed_records, hosts_records
    from quayside.config.host_publish import HostJob, restore_host
    from quayside.config.publish_plan import HostPlan
    from quayside.executors.factory import executor_for
    from quayside.inventory.config_services import ConfigService
    from quayside.inventory.load import load_inventory
    from quayside.settings import load_settings

    inventory = load_inventory(load_settings().inventory_path)
    service = ConfigService(**bench.dns.service())
    records = tuple(changed_records(hosts_records(hosts_text(n - 1)), hosts_records(hosts_text(n))))
    times = []
    for h, server in zip(bench.fleet, bench.dns, strict=True):
        versions = Path(str(server.conf) + ".versions")
        current = os.readlink(server.conf)
        previous = sorted(str(p) for p in versions.iterdir() if str(p) != current)[-1]
        plan = HostPlan(h.name, ("hosts",), "", "reload", records, previous)
        job = HostJob(h.name, h.address, service, plan, [], "unused")
        executor = executor_for(h.name, inventory.hosts[h.name])
        try:
            executor.run(["true"])  # the connection, as a publish has it open already
            started = time.perf_counter()
            note = restore_host(executor, job, previous)
            times.append(time.perf_counter() - started)
            if "old answers back" not in note:
                raise RuntimeError(f"{h.name}: {note}")
            back = HostPlan(h.name, ("hosts",), "", "reload", records, current)
            restore_host(executor, HostJob(h.name, h.address, service, back, [], "x"), current)
        finally:
            executor.close()
    return times


def under_load(bench: Bench, first: int, work: Path) -> tuple[int, int]:
    """dnsperf at QUERIES_PER_S against every server during PUBLISHES_UNDER_LOAD publishes;
    (sent, lost)."""
    queries = work / "queries.txt"
    queries.write_text("api.internal A\nhost-7.internal A\n")
    perfs = []
    for server in bench.dns:
        out = open(work / f"dnsperf-{server.name}.out", "w")  # noqa: SIM115
        perfs.append((subprocess.Popen(
            ["dnsperf", "-s", server.address, "-p", str(server.port), "-d", str(queries),
             "-l", "3600", "-Q", str(QUERIES_PER_S), "-t", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        ), out))  # fmt: skip
    try:
        time.sleep(1)
        for i in range(PUBLISHES_UNDER_LOAD):
            bench.save(first + i)
            bench.publish()
        time.sleep(2.5)  # answers to the last queries (dnsperf's timeout is 2 s)
    finally:
        for process, _ in perfs:
            process.send_signal(signal.SIGINT)
        for process, out in perfs:
            process.wait(timeout=30)
            out.close()
    sent = lost = 0
    for server in bench.dns:
        text = (work / f"dnsperf-{server.name}.out").read_text()
        sent += int(re.search(r"Queries sent:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        lost += int(re.search(r"Queries lost:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return sent, lost


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Set up the fleet and the platform once, then time Quayside, the serial loop, the
    restore, and the publishes under a query load."""
    repeat = max(1, options.repeat)
    options.work_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="config-publish-", dir=options.work_dir))
        work.chmod(0o755)
        bench = Bench(stack, work, options.hosts)
        n = 1
        bench.save(n)
        bench.publish()  # the first publish turns each plain directory into a version
        bench.check(n)
        quayside: list[float] = []
        for _ in range(repeat):
            n += 1
            bench.save(n)
            started = time.perf_counter()
            bench.publish()
            quayside.append(time.perf_counter() - started)
            bench.check(n)
            log(f"quayside publish to {options.hosts} hosts: {quayside[-1]:.2f} s")
        serial: list[float] = []
        for _ in range(repeat):
            n += 1
            started = time.perf_counter()
            serial_loop(bench, n, work)
            serial.append(time.perf_counter() - started)
            bench.check(n)
            log(f"serial loop over {options.hosts} hosts: {serial[-1]:.2f} s")
        n += 1  # the loop's files were not published through the config center: publish again
        bench.save(n)
        bench.publish()
        restores = restore_times(bench, n)
        bench.check(n)
        log(f"restore per host: median {statistics.median(restores):.3f} s")
        sent, lost = under_load(bench, n + 1, work)
        log(f"dnsperf during {PUBLISHES_UNDER_LOAD} publishes: {sent} sent, {lost} lost")
    tools = [
        ToolResult("quayside", "Quayside config-publish flow (in-process, real Prefect server)",
                   "render, read and diff every host, lock, stage + dnsmasq --test, symlink "
                   "swap, SIGHUP, every changed record verified with dnspython, ledger",
                   Timing(statistics.median(quayside), quayside)),
        ToolResult("serial_loop", "the seed's script as a serial loop (rsync, ssh reload, dig)",
                   "per host: rsync over a new ssh connection, ssh reload, dig until the new "
                   "answer; no validation, no backup, no restore",
                   Timing(statistics.median(serial), serial)),
    ]  # fmt: skip
    q = statistics.median(quayside)
    entry = make_entry(
        tools,
        title=f"Config publish: one changed hosts file to {options.hosts} dnsmasq servers",
        description="A hosts file (51 records, one changing) published to every dnsmasq "
        "server, each on its own sshd host: Quayside's config-publish flow against the seed's "
        "pull script run host by host; the restore of one host after a failed verify; and "
        f"{PUBLISHES_UNDER_LOAD} consecutive publishes under a {QUERIES_PER_S} queries/s "
        "dnsperf load on every server.",
        command=COMMAND,
        repeat=repeat,
        extra={
            "hosts": options.hosts,
            "restore_s": round(statistics.median(restores), 3),
            "restore_runs_s": [round(v, 3) for v in restores],
            "dns_queries_sent": sent,
            "dns_queries_failed": lost,
            "goal_s": GOAL_S,
            "goal_ratio": GOAL_RATIO,
            "goal_restore_s": GOAL_RESTORE_S,
            "meets_goal": q < GOAL_S
            and statistics.median(serial) / q >= GOAL_RATIO
            and statistics.median(restores) < GOAL_RESTORE_S
            and lost == 0,
        },
        notes=[
            f"Goals (issue 17): under {GOAL_S} s for the flow, at least {GOAL_RATIO:g}x the "
            f"serial loop, a restore under {GOAL_RESTORE_S} s per host, no failed query.",
            "Quayside's time is the whole flow call (Prefect flow run, ledger, artifacts "
            "included); the servers are reloaded (SIGHUP), never restarted, for a hosts file.",
        ],
    )
    return {"config_publish": entry}
