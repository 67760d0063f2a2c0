"""Who made a scratch directory (a git deploy's build directory and its ``.stream``
directory): the flow run and the process, in an owner file written beside it before it
exists. The next deploy removes what a killed run left at once (:func:`sweep_dead`), instead
of after :data:`quayside.scratch.STALE_AFTER_S`.

The owner file sits beside the directory (``<name>.owner``), not in it: a build directory is
the release's payload (every file in it is deployed), and may be the source mirror's lent
tree, which goes back to the mirror.

An owner is dead when its process is gone (same boot of this machine: the pid is not
running, or runs a later process) or, for the caller that holds the app/env deploy lock,
when its flow run is over in Prefect (a live run of that app/env would hold the lock). A
caller without the lock (a dry run) asks only the first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from quayside.scratch import BackgroundRemoval

OWNER_SUFFIX = ".owner"
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")

RunsOver = Callable[[Collection[str]], set[str]]
"""Given flow run ids, those that are over (final in Prefect, or gone from it)."""


@dataclass(frozen=True)
class ScratchOwner:
    """Who made a scratch directory.

    Attributes:
        app: the app it was made for.
        env: the environment it was made for.
        flow_run_id: the flow run (None outside one).
        pid: the process that made it.
        pid_started: that process's start time (``/proc/<pid>/stat`` field 22, clock ticks
            since boot): tells a reused pid apart.
        boot_id: this machine's boot id when it was made: a pid means nothing on another
            machine or after a reboot.
    """

    app: str
    env: str
    flow_run_id: str | None
    pid: int
    pid_started: int | None
    boot_id: str | None


def owner_path(scratch: Path) -> Path:
    """The owner file of ``scratch`` (beside it)."""
    return scratch.with_name(scratch.name + OWNER_SUFFIX)


def claim(scratch: Path, app: str, env: str, flow_run_id: str | None) -> Path:
    """Record this process (and ``flow_run_id``) as the owner of ``scratch`` and every
    ``<scratch>.*`` beside it; call it before creating them.

    Returns:
        The owner file (removed last, with the directories it owns).
    """
    pid = os.getpid()
    started = _started(pid)
    known = started if started is not None and started >= 0 else None
    owner = ScratchOwner(app, env, flow_run_id, pid, known, _boot_id())
    path = owner_path(scratch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{pid}.tmp")
    tmp.write_text(json.dumps(asdict(owner)))
    os.replace(tmp, path)  # a reader sees a whole owner file or none
    return path


def read_owner(path: Path) -> ScratchOwner | None:
    """The owner recorded in ``path``; None if it cannot be read (being written, damaged)."""
    try:
        data = json.loads(path.read_text())
        return ScratchOwner(
            app=str(data["app"]),
            env=str(data["env"]),
            flow_run_id=data.get("flow_run_id"),
            pid=int(data["pid"]),
            pid_started=data.get("pid_started"),
            boot_id=data.get("boot_id"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def process_gone(owner: ScratchOwner) -> bool:
    """Whether ``owner``'s process has certainly ended: this boot of this machine made it and
    the pid is not running, or runs a process started later (a reused pid)."""
    if owner.boot_id is None or owner.boot_id != _boot_id():
        return False  # another machine's, or an earlier boot's: the pid cannot tell
    started = _started(owner.pid)
    if started is None:
        return True
    return started >= 0 and owner.pid_started is not None and started != owner.pid_started


def sweep_dead(
    directory: Path,
    *,
    app: str,
    env: str,
    runs_over: RunsOver | None,
    removal: BackgroundRemoval,
) -> list[Path]:
    """Remove the scratch in ``directory`` whose owner is dead, with its owner file (last).

    Args:
        directory: where the scratch directories and their owner files are.
        app: the app whose deploy lock the caller holds (with ``runs_over``).
        env: its environment.
        runs_over: given for a caller holding ``app``/``env``'s deploy lock: that app/env's
            scratch whose flow run is over is removed too. None (no lock, e.g. a dry run):
            only scratch whose process is gone.
        removal: removes in the background (the directories before their owner file).

    Returns:
        The owner files whose scratch is being removed.
    """
    claims: list[tuple[Path, ScratchOwner]] = []
    try:
        entries = [e for e in os.scandir(directory) if e.name.endswith(OWNER_SUFFIX)]
    except OSError:
        return []
    for entry in entries:
        owner = read_owner(Path(entry.path))
        if owner is not None:
            claims.append((Path(entry.path), owner))
    dead = [path for path, owner in claims if process_gone(owner)]
    if runs_over is not None:
        ours = {
            path: owner.flow_run_id
            for path, owner in claims
            if path not in dead and (owner.app, owner.env) == (app, env) and owner.flow_run_id
        }
        if ours:
            over = runs_over(set(ours.values()))
            dead += [path for path, run_id in ours.items() if run_id in over]
    for path in dead:
        removal.remove(*_owned(path), path)
    return dead


def _owned(owner_file: Path) -> list[Path]:
    """The scratch ``owner_file`` owns: ``<name>`` and every ``<name>.*`` but itself."""
    scratch = owner_file.with_name(owner_file.name.removesuffix(OWNER_SUFFIX))
    found = [scratch]
    try:
        found += [
            Path(e.path)
            for e in os.scandir(scratch.parent)
            if e.name.startswith(scratch.name + ".") and e.path != str(owner_file)
        ]
    except OSError:
        pass
    return found


def _boot_id() -> str | None:
    try:
        return BOOT_ID_FILE.read_text().strip() or None
    except OSError:
        return None


def _started(pid: int) -> int | None:
    """``pid``'s start time in clock ticks since boot; None if it is not running (no such
    process, or a zombie: it has ended, its parent has not collected it yet); -1 if it is
    there but cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return -1
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and ")"
    try:
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (IndexError, ValueError):
        return -1
