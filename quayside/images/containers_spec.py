"""What a release's container is, as data: its name, its labels, the slot it takes and the
Docker Engine create arguments built from the app's ``image.run`` settings. Pure: no engine,
no host; :mod:`quayside.images.containers_docker` hands these to the engine.

A new container starts beside the serving one under a versioned name on the other slot, so
two containers of one app never share a name or an address; the labels say what each one
runs, and are what ``quayside ps`` and reconcile read back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quayside.errors import InputError
from quayside.inventory.image_models import ImageRun

VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
"""A release version as it may appear in a container name (a tag's rules, plus '+')."""
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
SLOT_NAMES = ("a", "b")

LABEL_APP = "quayside.app"
LABEL_ENV = "quayside.env"
LABEL_VERSION = "quayside.version"
LABEL_DIGEST = "quayside.digest"
LABEL_CONFIG = "quayside.config"
LABEL_CONFIG_FILES = "quayside.config-files"
LABEL_SLOT = "quayside.slot"


def check_version(value: object, field_name: str = "version") -> str:
    """``value`` if it can name a release (and a container).

    Raises:
        InputError: naming the field and the rule (shell metacharacters, spaces, '/' ...).
    """
    if not isinstance(value, str) or VERSION_RE.fullmatch(value) is None:
        raise InputError(
            f"{field_name}: {str(value)[:80]!r} is not a version (letters, digits, '.', '_', "
            "'+', '-'; starting with a letter or digit; at most 64 characters)"
        )
    return value


def check_digest(value: object, field_name: str = "digest") -> str:
    """``value`` if it is a ``sha256:<64 hex>`` manifest digest.

    Raises:
        InputError: naming the field.
    """
    if not isinstance(value, str) or DIGEST_RE.fullmatch(value) is None:
        raise InputError(f"{field_name}: {str(value)[:80]!r} is not a sha256:<64 hex> digest")
    return value


@dataclass(frozen=True)
class ContainerSpec:
    """One release's container on one host."""

    app: str
    env: str
    version: str
    digest: str
    image: str
    """The reference pulled and run: ``registry/repository@sha256:...``."""
    slot: int
    config_version: str
    """The rendered config's digest (``none`` without config files)."""
    config_files: Mapping[str, int] = field(default_factory=dict)
    """filename -> config center version."""

    def __post_init__(self) -> None:
        check_version(self.version)
        check_digest(self.digest)
        if self.slot not in (0, 1):
            raise InputError(f"slot: {self.slot} is neither 0 nor 1")

    @property
    def name(self) -> str:
        """``<app>-<env>-<version>-<slot>``: versioned, and apart from the other slot's."""
        version = self.version.replace("+", "_")
        return f"{self.app}-{self.env}-{version}-{SLOT_NAMES[self.slot]}"

    @property
    def serves(self) -> str:
        """What a host running this container serves, as the release's ``details.serves``."""
        return serves_label(self.digest, self.config_version)

    def labels(self) -> dict[str, str]:
        return {
            LABEL_APP: self.app,
            LABEL_ENV: self.env,
            LABEL_VERSION: self.version,
            LABEL_DIGEST: self.digest,
            LABEL_CONFIG: self.config_version,
            LABEL_CONFIG_FILES: json.dumps(dict(self.config_files), sort_keys=True),
            LABEL_SLOT: SLOT_NAMES[self.slot],
        }


def serves_label(digest: str, config_version: str) -> str:
    """``<digest> config <config version>``: one label for what a host serves."""
    return f"{digest} config {config_version}"


def app_filter(app: str, env: str) -> dict[str, Any]:
    """The engine's list filter for the containers of ``app``/``env``."""
    return {"label": [f"{LABEL_APP}={app}", f"{LABEL_ENV}={env}"]}


def other_slot(serving: int | None) -> int:
    """The slot a new container takes: the one the serving container does not hold."""
    return 0 if serving in (None, 1) else 1


def slot_of(labels: Mapping[str, str]) -> int | None:
    name = labels.get(LABEL_SLOT)
    return SLOT_NAMES.index(name) if name in SLOT_NAMES else None


def split_slot(slot: str) -> tuple[str, int]:
    """``127.0.0.1:18080`` -> (``127.0.0.1``, 18080); brackets of an IPv6 address dropped."""
    address, _, port = slot.rpartition(":")
    return address.strip("[]"), int(port)


def config_host_dir(run: ImageRun, host: str, spec: ContainerSpec) -> str:
    """The host directory holding ``spec``'s rendered config files."""
    return f"{run.config_dir.replace('{host}', host)}/{spec.name}"


def create_arguments(run: ImageRun, spec: ContainerSpec, host: str) -> dict[str, Any]:
    """``docker.DockerClient.containers.create`` keyword arguments for ``spec`` under ``run``:
    labels, environment (``run.env``, the slot in ``run.listen_env``), the network and port,
    the config directory mounted read-only, limits, restart policy and log options."""
    slot = run.slots[spec.slot]
    address, port = split_slot(slot)
    environment = dict(run.env)
    if run.listen_env:
        environment[run.listen_env] = slot if run.network == "host" else f"0.0.0.0:{run.port}"
    args: dict[str, Any] = {
        "image": spec.image,
        "name": spec.name,
        "detach": True,
        "labels": spec.labels(),
        "environment": environment,
        "restart_policy": {"Name": run.restart},
    }
    if run.restart == "on-failure":
        args["restart_policy"]["MaximumRetryCount"] = 5
    if run.init:
        args["init"] = True
    if run.network == "host":
        args["network_mode"] = "host"
    else:
        args["ports"] = {f"{run.port}/tcp": (address, port)}
    if run.config_service and run.config_mount:
        args["volumes"] = {
            config_host_dir(run, host, spec): {"bind": run.config_mount, "mode": "ro"}
        }
    if run.memory:
        args["mem_limit"] = run.memory
    if run.cpus:
        args["nano_cpus"] = int(run.cpus * 1_000_000_000)
    if run.pids_limit:
        args["pids_limit"] = run.pids_limit
    if run.log_driver or run.log_options:
        args["log_config"] = {"type": run.log_driver or "json-file", "config": run.log_options}
    return args


def probe_url(run: ImageRun, slot: int) -> str:
    """The URL that checks a container on ``slot`` directly (not through nginx)."""
    address, port = split_slot(run.slots[slot])
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{run.health_path}"
