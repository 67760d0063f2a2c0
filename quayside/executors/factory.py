"""Executors from inventory hosts."""

from __future__ import annotations

import os
from pathlib import Path

from quayside.executors.base import Executor
from quayside.executors.control import control_dir
from quayside.executors.local import LocalExecutor, login_env
from quayside.executors.ssh import SSHExecutor
from quayside.inventory.models import Host
from quayside.settings import load_settings


def executor_for(name: str, host: Host) -> Executor:
    """The executor for inventory host ``name``: SSH, or for ``transport: local`` this
    machine, with a login environment (the platform's own variables stay out)."""
    if host.transport == "local":
        return LocalExecutor(name, address=host.address, base_env=login_env(os.environ))
    return SSHExecutor(
        name=name,
        address=host.address,
        port=host.port,
        user=host.user,
        key_file=Path(host.key_file).expanduser() if host.key_file else None,
        known_hosts=Path(host.known_hosts).expanduser() if host.known_hosts else None,
        verify_host_key=host.verify_host_key,
        connect_timeout=host.connect_timeout,
        control_dir=control_dir(load_settings().home) if host.persist_s > 0 else None,
        persist_s=host.persist_s,
    )
