"""A service's checker, reload, restart and verify commands for one host: the inventory's
argv (or the kind's default) with the placeholders filled, and which changed files need a
restart rather than a reload.

Placeholders (``{host}``, ``{address}``, ``{dir}``, ``{staged}``, ``{main}``) are replaced
inside single argv elements; nothing is ever parsed by a shell.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from quayside.commands import dnsmasq, nginx
from quayside.inventory.config_services import ConfigService

Action = Literal["reload", "restart"]


def fill(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """``argv`` with each ``{name}`` of ``values`` replaced (plain text replacement, so a
    brace elsewhere is left alone)."""
    out = []
    for arg in argv:
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", value)
        out.append(arg)
    return out


def live_dir(service: ConfigService, host: str) -> str:
    """The service's directory on ``host``."""
    return service.dir.replace("{host}", host)


def reload_patterns(service: ConfigService) -> tuple[str, ...]:
    """The files a reload picks up (everything else needs a restart)."""
    if service.reload_files is not None:
        return tuple(service.reload_files)
    return dnsmasq.RELOAD_FILES if service.kind == "dnsmasq" else ("*",)


def picked_up_by_reload(service: ConfigService, filename: str) -> bool:
    return any(fnmatch.fnmatchcase(filename, p) for p in reload_patterns(service))


def action_for(service: ConfigService, changed: Iterable[str]) -> Action:
    """``restart`` when any changed file is one a reload does not pick up."""
    return "reload" if all(picked_up_by_reload(service, f) for f in changed) else "restart"


@dataclass(frozen=True)
class HostCommands:
    """One host's commands for one service."""

    live_dir: str
    check: list[str]
    reload: list[str]
    restart: list[str]
    verify: list[str] | None

    def for_action(self, action: Action) -> list[str]:
        return self.reload if action == "reload" else self.restart


def host_commands(service: ConfigService, host: str, address: str, staged_dir: str) -> HostCommands:
    """The filled commands of ``service`` on ``host`` with the new set staged in
    ``staged_dir``."""
    directory = live_dir(service, host)
    main = posixpath.join(staged_dir, service.main_file) if service.main_file else staged_dir
    values = {
        "host": host,
        "address": address,
        "dir": directory,
        "staged": staged_dir,
        "main": main,
    }
    if service.kind == "dnsmasq":
        check, reload, restart = dnsmasq.check(), dnsmasq.reload(), dnsmasq.restart()
    elif service.kind == "nginx":
        check, reload, restart = nginx.check(), nginx.reload(), nginx.reload()
    else:
        check = reload = restart = []
    check = service.check or check
    reload = service.reload or reload
    restart = service.restart or (restart if service.kind == "dnsmasq" else reload)
    if service.kind == "nginx":
        reload, restart = nginx.settled(reload), nginx.settled(restart)
    return HostCommands(
        directory,
        fill(check, values),
        fill(reload, values),
        fill(restart, values),
        fill(service.verify, values) if service.verify else None,
    )
