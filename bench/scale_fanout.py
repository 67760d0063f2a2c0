"""``scale_fanout_200``: Quayside's ``git_deploy`` flow to 200 sshd hosts on loopback with a
concurrency bound (the environment's ``max_parallel``), next to Ansible with ``--forks 50``
doing the same release in the same run (issue 19).

The flow is called in-process against a real ``quayside up`` (as ``git_deploy_fanout``
does), so this process is the controller: while it runs, a sampler thread reads this
process's resident memory (``VmRSS``, peak ``VmHWM`` reset before each run), its open file
descriptors (``/proc/self/fd``) and the resident memory of its child processes (the OpenSSH
clients and rsyncs the flow starts). The payload is small (:data:`FILES` files,
:data:`TOTAL_BYTES` bytes) so 200 hosts times two tools fit the machine: the figure is the
fan-out's cost (SSH handshakes, processes, Prefect task runs), not the bytes.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bench.git_deploy.ansible_runs import Ansible
from bench.git_deploy.app import file_layout, git
from bench.git_deploy.fleet import Fleet, Host, each_host, start_fleet, work_directory
from bench.git_deploy.quayside_runs import ENV, AppNames, Quayside, inventory_document
from bench.git_deploy.recorder import Recorder, Spec
from bench.git_deploy.roots import Roots
from bench.harness import (
    Options,
    ToolResult,
    log,
    machine_info,
    make_entry,
    reproduce_command,
    run_argv,
)

NAME = "scale_fanout_200"
RESULTS = (NAME,)
COMMAND = reproduce_command(NAME)
#: hosts when ``--hosts`` is left at the harness default (20, the other benchmarks' size)
HOSTS = 200
HARNESS_DEFAULT_HOSTS = 20
#: the environment's max_parallel, and Ansible's forks: the same bound for both tools
MAX_PARALLEL = 50
FILES = 200
TOTAL_BYTES = 2 * 1000 * 1000
TAG = "v1.0.0"
GOAL_RATIO = 5.0
#: Ansible's timed runs: one, as at 200 hosts one takes minutes on this two-core machine
ANSIBLE_RUNS = 1
GOAL_RSS_MB = 500
PROBE_FILE = "app/module_00/part_000.dat"
#: an app on one host, released once untimed so the timed runs do not import the flow
WARMUP_APP = "warmup-0"
#: process names of the hosts' side (the sshd wrapper execs into sshd), not the controller's
HOST_SIDE = frozenset({"sshd", "sshd-session"})

CONTEXT = {
    NAME: f"""Goals (issue 19): Quayside at least {GOAL_RATIO:g}x faster than Ansible with
forks=50, and the controller's peak resident memory under {GOAL_RSS_MB} MB.

**How the cost grows with hosts** (the run of 2026-12-05, on a machine shared with other
engineers' tests: 1-minute load 17 when it started, 47 at its end, on 2 cores). With the
bound at 50, 200 hosts are four waves of 50: the one-wave release (50 hosts) took 5.72 s and
the 200-host one 23.30 s, 4.1x, so the wall time grows with the number of waves
(hosts / max_parallel), about 0.12 s per host here, while the controller stays small: 310 MB
peak RSS (the same at every run), 107 open file descriptors, 216 MB for its OpenSSH clients
and rsyncs together, with 50 hosts in flight. Ansible with the same 50 forks took
398.6 s (about 2 s per host): its controller forks a Python worker per host and task and
runs a Python module on every host for every task, which here shares the two cores with
everything else.

**Where the limit is**: the cores, shared here by the controller, 200 sshd and their
sessions; the largest part that could be isolated is SSH connection set-up. 200 fresh
OpenSSH connections running `true`, 50 at a time, took 23.7 s on their own (measured right
after the releases, the load still high); the first timed release (new connections) took
28.1 s, the next two 23.3 and 22.8 s (the first one's connections still open: ControlPersist
60 s). Both ends of every handshake run on the same two cores here; on a real fleet the
hosts' side is spread over the hosts.

**What to scale first**: keep SSH connections open between releases (the host's
`persist_s`, 60 s by default) so a release pays no handshakes, then raise the environment's
`max_parallel` while the controller has cores for the handshakes: memory was not the limit
(310 MB + 216 MB with 50 in flight, against the 500 MB goal for the controller). This run
measured one bound (50); higher bounds were not measured.
""",
}


@dataclass(frozen=True)
class SmallApp:
    """The generated repository (one tag), its tarball and the probe file's bytes."""

    repo: Path
    tarball: Path
    probe: bytes
    files: int
    total_bytes: int


def make_small_app(work: Path) -> SmallApp:
    """A git repository of :data:`FILES` random files (:data:`TOTAL_BYTES` in all), tagged
    :data:`TAG`, and its tar.gz for Ansible."""
    repo = work / "app-repo"
    repo.mkdir()
    # file_layout's paths; equal sizes (its random spread can go negative for few files)
    layout = [(path, TOTAL_BYTES // FILES) for path, _ in file_layout(FILES, TOTAL_BYTES)]
    for path, size in layout:
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(size))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", TAG)
    tarball = work / "v1.tar.gz"
    git(repo, "archive", "--format=tar.gz", "-o", str(tarball), TAG)
    return SmallApp(
        repo,
        tarball,
        (repo / PROBE_FILE).read_bytes(),
        len(layout),
        sum(size for _, size in layout),
    )


def verify_small(hosts: Sequence[Host], roots: Roots, app: SmallApp) -> None:
    """Every host's ``current`` holds the probe file; the last one every file."""

    def check(host: Host) -> None:
        got = (roots.local(host) / "current" / PROBE_FILE).read_bytes()
        if got != app.probe:
            raise AssertionError(f"{host.name}: current/{PROBE_FILE} is not the release's")

    each_host(hosts, check)
    last = roots.local(hosts[-1]) / "current"
    count = sum(1 for p in last.rglob("*.dat") if p.is_file())
    if count != app.files:
        raise AssertionError(f"{hosts[-1].name}: {count} data files in current, want {app.files}")


# -- what the controller holds ---------------------------------------------------------------


def _status_kb(field: str, pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _children_rss_kb(pid: int, skip: frozenset[int] = frozenset()) -> int:
    """Resident memory of every live descendant of ``pid`` (ssh, rsync), leaving out the
    process trees rooted at ``skip`` (the platform's) and the hosts' sshd processes."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm, rest = stat.split(" (", 1)[1].rsplit(")", 1)
        if comm in HOST_SIDE:
            continue
        fields = rest.split()  # state, ppid, ... rss is the 22nd
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields[21]) * page_kb
    total, todo = 0, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in skip:
                total += rss.get(child, 0)
                todo.append(child)
    return total


class ControllerSampler:
    """Samples this process's RSS, open fds and its children's RSS (but for the trees rooted
    at ``skip``) every ``interval_s`` while running; peaks kept. ``VmHWM`` is reset on start
    (``/proc/self/clear_refs``) so the peak is this run's, not an earlier one's."""

    def __init__(self, skip: frozenset[int] = frozenset(), interval_s: float = 0.1) -> None:
        self.skip = skip
        self.interval_s = interval_s
        self.peak_rss_kb = 0
        self.peak_fds = 0
        self.peak_children_rss_kb = 0
        self.peak_children = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ControllerSampler:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")
        self._thread.start()
        return self

    def _sample(self) -> None:
        self.peak_rss_kb = max(self.peak_rss_kb, _status_kb("VmRSS"))
        self.peak_fds = max(self.peak_fds, len(os.listdir("/proc/self/fd")))
        children = _children_rss_kb(os.getpid(), self.skip)
        self.peak_children_rss_kb = max(self.peak_children_rss_kb, children)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.peak_rss_kb = max(self.peak_rss_kb, _status_kb("VmHWM"))


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft open-file limit to its hard limit; (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- the platform ----------------------------------------------------------------------------


def start_platform(
    stack: ExitStack, work: Path, fleet: Fleet, repo: Path, apps: Sequence[str], warmup_host: str
) -> Quayside:
    """``quayside up`` with an inventory of ``apps`` on every host, ``max_parallel`` =
    :data:`MAX_PARALLEL`, as many ``wave-N`` apps on the first :data:`MAX_PARALLEL` hosts
    (one wave), and :data:`WARMUP_APP` on ``warmup_host`` alone (stopped when ``stack``
    closes)."""
    from testbed.platform import Platform

    document = inventory_document(
        fleet.hosts, fleet.key_file, fleet.known_hosts, fleet.mount, repo, apps
    )
    document["hosts"] = {k: v for k, v in document["hosts"].items() if not k.startswith("cold-")}
    document["groups"].pop("bench-cold", None)
    for app in document["apps"].values():
        app["environments"][ENV]["max_parallel"] = MAX_PARALLEL
    document["groups"]["warmup"] = [warmup_host]
    document["groups"]["wave"] = [h.name for h in fleet.hosts[:MAX_PARALLEL]]
    for i in range(len(apps)):
        document["apps"][f"wave-{i}"] = {
            **document["apps"][apps[0]],
            "deploy_root": f"{fleet.mount}/wave-{i}",
            "environments": {ENV: {"groups": ["wave"], "max_parallel": MAX_PARALLEL}},
        }
    document["apps"][WARMUP_APP] = {
        **document["apps"][apps[0]],
        "deploy_root": f"{fleet.mount}/{WARMUP_APP}",
        "environments": {ENV: {"groups": ["warmup"], "max_parallel": 1}},
    }
    inventory = work / "quayside.yaml"
    inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    platform = Platform(work / "quayside-home", inventory)
    stack.callback(platform.stop)
    log("starting the platform (quayside up)")
    platform.start()
    return Quayside(platform)


# -- the measurement -------------------------------------------------------------------------


def host_count(options: Options) -> int:
    """:data:`HOSTS`, unless ``--hosts`` asked for another size than the harness default."""
    return HOSTS if options.hosts == HARNESS_DEFAULT_HOSTS else options.hosts


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Start the hosts and the platform, then time Quayside and Ansible forks=50."""
    count = host_count(options)
    soft, hard = raise_fd_limit()
    log(f"{NAME}: {count} hosts, max_parallel {MAX_PARALLEL}, open files limit {soft}/{hard}")
    samplers: list[ControllerSampler] = []
    started_hosts = 0
    with ExitStack() as stack:
        work = stack.enter_context(work_directory(options, prefix=f"{NAME}-"))
        app = make_small_app(work)
        fleet = start_fleet(stack, work, count)
        started_hosts = len(fleet.hosts)
        roots = Roots(fleet.mount, fleet.hosts)
        names = AppNames("fanout")
        apps = [f"fanout-{i}" for i in range(options.repeat)]
        quayside = start_platform(stack, work, fleet, app.repo, apps, fleet.hosts[0].name)
        recorder = Recorder(options, after=roots.purge)
        ansible = Ansible(work, fleet.hosts, fleet.key_file, fleet.known_hosts)

        assert quayside.platform.process is not None
        platform_pid = frozenset({quayside.platform.process.pid})
        log("  (untimed: one release to one host, to load the flow's modules)")
        roots.use(WARMUP_APP)
        quayside.deploy(WARMUP_APP, TAG)
        roots.purge()

        def quayside_deploy() -> Any:
            with ControllerSampler(platform_pid) as sampler:
                result = quayside.deploy(roots.label, TAG)
            samplers.append(sampler)
            return result

        q = recorder.tool(
            Spec(
                "quayside",
                f"Quayside `git_deploy` flow, max_parallel {MAX_PARALLEL}",
                "the flow called in-process against the running Prefect server: fetch and "
                "resolve the tag, export, manifest, artifact store, ledger, transfer to every "
                f"host ({MAX_PARALLEL} at a time), atomic switch, prune",
            ),
            quayside_deploy,
            setup=lambda: roots.use(names.next()),
            check=lambda: verify_small(fleet.hosts, roots, app),
        )
        waves = AppNames("wave")
        wave_hosts = fleet.hosts[:MAX_PARALLEL]
        one_wave = recorder.tool(
            Spec("quayside_one_wave", "the same flow to one wave", "the first hosts only"),
            lambda: quayside.deploy(roots.label, TAG),
            setup=lambda: roots.use(waves.next()),
            check=lambda: verify_small(wave_hosts, roots, app),
        )
        log(f"  ssh floor: a new connection running `true` on every host, {MAX_PARALLEL} at once")
        handshake_s = ssh_floor(fleet)
        log(f"  ssh floor: {handshake_s:.2f} s")
        a = Recorder(replace(options, repeat=ANSIBLE_RUNS), after=roots.purge).tool(
            Spec(
                "ansible_forks50",
                "Ansible, forks=50",
                "one `ansible-playbook --forks 50` run: `file` mkdir, `unarchive` of the "
                "release tar.gz (made beforehand, not timed), `file` state=link",
            ),
            lambda: ansible.deploy(MAX_PARALLEL, roots.path, "r1", app.tarball),
            setup=lambda: roots.new("ansible50"),
            check=lambda: verify_small(fleet.hosts, roots, app),
            unavailable=None if ansible.available else "ansible-playbook not found in the venv",
        )
    extra = {
        "quayside_one_wave_s": round(one_wave.timing.median_s, 3) if one_wave.timing else None,
        "one_wave_hosts": len(wave_hosts),
        "ssh_floor_s": round(handshake_s, 3),
    }
    return {NAME: build_entry(q, a, samplers, started_hosts, app, options.repeat, extra)}


def ssh_floor(fleet: Fleet) -> float:
    """Seconds for a fresh OpenSSH connection (no connection sharing) running ``true`` on
    every host, :data:`MAX_PARALLEL` at a time: the handshakes alone."""

    def one(host: Host) -> None:
        run_argv(
            [
                "ssh", "-i", str(fleet.key_file), "-p", str(host.port),
                "-o", f"UserKnownHostsFile={fleet.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "ControlPath=none", "-o", "ControlMaster=no",
                f"{host.user}@{host.address}", "true",
            ]
        )  # fmt: skip

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        list(pool.map(one, fleet.hosts))
    return time.perf_counter() - started


def build_entry(
    q: ToolResult,
    a: ToolResult,
    samplers: Sequence[ControllerSampler],
    hosts: int,
    app: SmallApp,
    repeat: int,
    figures: dict[str, Any],
) -> dict[str, Any]:
    """The results.json entry: times, ratio, the controller's peaks, the one-wave and
    handshake figures and the goals."""
    quayside_s = q.timing.median_s if q.timing else None
    peak_rss = max((s.peak_rss_kb for s in samplers), default=0) / 1024
    peak_children = max((s.peak_children_rss_kb for s in samplers), default=0) / 1024
    ratio = None
    if q.timing and a.timing and q.timing.median_s > 0:
        ratio = a.timing.median_s / q.timing.median_s
    extra = {
        "hosts": hosts,
        "max_parallel": MAX_PARALLEL,
        "files": app.files,
        "total_bytes": app.total_bytes,
        "per_host_s": round(quayside_s / hosts, 4) if quayside_s else None,
        "peak_rss_mb": round(peak_rss, 1) if samplers else None,
        "open_fds_peak": max((s.peak_fds for s in samplers), default=None),
        "children_rss_peak_mb": round(peak_children, 1) if samplers else None,
        "peak_rss_runs_mb": [round(s.peak_rss_kb / 1024, 1) for s in samplers],
        "goal_ratio": GOAL_RATIO,
        "goal_rss_mb": GOAL_RSS_MB,
        "meets_goal_ratio": None if ratio is None else ratio >= GOAL_RATIO,
        "meets_goal_rss": None if not samplers else peak_rss < GOAL_RSS_MB,
        **figures,
    }
    return make_entry(
        [q, a],
        title=f"Fan-out at scale: a git deploy to {hosts} hosts",
        description=(
            f"The first release of a small app ({app.files} files, "
            f"{app.total_bytes / 1e6:.0f} MB) to {hosts} sshd hosts on loopback (each in its "
            f"own mount namespace), {MAX_PARALLEL} hosts at a time: Quayside's `git_deploy` "
            "flow called in-process against a running `quayside up` (this process is the "
            f"controller whose memory and file descriptors are sampled), and Ansible with "
            f"--forks {MAX_PARALLEL}, in the same run."
        ),
        command=COMMAND + (f" --hosts {hosts}" if hosts != HOSTS else ""),
        repeat=repeat,
        extra=extra,
        notes=NOTES,
        machine=machine_info(),
    )


NOTES: tuple[str, ...] = (
    f"Both tools work {MAX_PARALLEL} hosts at a time: the environment's `max_parallel` is "
    f"{MAX_PARALLEL} (Quayside's concurrency bound per release), Ansible runs with "
    f"`--forks {MAX_PARALLEL}`. Each timed run deploys into fresh deploy roots; SSH connections "
    "that a tool's earlier run left open (OpenSSH ControlPersist, both tools use it) may be "
    "reused by its next run.",
    "`peak_rss_mb`: the controller's peak resident memory during a timed Quayside run (this "
    "process, where the flow runs in-process: VmHWM reset before the run, and VmRSS sampled "
    "every 0.1 s), the largest of the runs (`peak_rss_runs_mb`); `open_fds_peak`: the most "
    "file descriptors it held (/proc/self/fd); `children_rss_peak_mb`: the summed RSS of its "
    "child processes at the worst sample (the OpenSSH clients, including the connection "
    "masters, and rsync), leaving out the platform's processes and the hosts' sshd.",
    f"`quayside_one_wave_s`: the same flow to the first {MAX_PARALLEL} hosts only (one wave of "
    "the bound), median of the same number of runs; `ssh_floor_s`: a fresh OpenSSH connection "
    f"(no sharing) running `true` on every host, {MAX_PARALLEL} at a time, once: the "
    "handshakes alone, on the same cores as the hosts' sshd.",
    f"Ansible is timed {ANSIBLE_RUNS} time(s) (`runs_s`), Quayside `repeat` times: at this "
    "size one Ansible run takes minutes here, and the whole benchmark had to fit the time "
    "given to it; its ratio is against that run.",
    "The hosts are sshd processes on this machine, so the hosts' side of every handshake, "
    "rsync and tar runs on the same two cores as the controller (and as other work on the "
    "machine): on real hosts that work is spread over the fleet.",
)
