"""What each host of a release serves, read back from the hosts, per release kind: the one
table a reconcile dispatches on (:data:`SERVED_BY`).

A git release (deploy, rollback) switches ``<deploy_root>/current`` to a release directory
and names it in ``details.release_id``; a config release switches its service's live
directory (``<dir>``) to a version directory and names it in ``details.version_dir``, on the
hosts in ``details.hosts``. Each entry says which details key names what a host serving the
release points at, which kinds' releases name the same things (to label what the other hosts
serve), and how to read it from the hosts (through their executors, one round trip per host).
An image release runs a container per host and names what it serves in ``details.serves``
(``<digest> config <config version>``); a host serves what the container its nginx upstream
sends traffic to runs. A kind without an entry (plugin, hello) is reconciled without host
rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from quayside.config.host_publish import INITIAL_VERSION
from quayside.fanout import run_on_hosts
from quayside.inventory.resolve import Target
from quayside.ledger.models import Release, ReleaseKind


@dataclass(frozen=True)
class HostFound:
    """What one host serves: the directory its live link points at (a release directory, a
    config version directory; None: none of this layout), or why it could not be read."""

    host: str
    current: str | None
    error: str | None = None


Reader = Callable[[Target, Release], list[HostFound]]
"""Reads what the hosts a release targeted serve (unreachable hosts reported, not raised)."""


@dataclass(frozen=True)
class ServedBy:
    """How a release kind's hosts are read back.

    Attributes:
        key: the details key naming what a host serving the release points at.
        kinds: the kinds whose releases' ``details[key]`` label what hosts serve.
        read: reads the hosts.
        nothing: the label of a host that serves none of this layout.
        named: labels of directories no release names (a config service's files from
            before its first publish).
    """

    key: str
    kinds: frozenset[ReleaseKind]
    read: Reader
    nothing: str
    named: Mapping[str, str]


def _first_line(text: str | None) -> str:
    return ((text or "").strip().splitlines() or [""])[0][:300]


def read_git_current(target: Target, release: Release) -> list[HostFound]:
    """Each host's ``current``, read with the deploy code's fact reading (``max_parallel``
    hosts at once)."""
    from quayside.deploy.host_plan import read_host_facts
    from quayside.deploy.scripts import host_deploy_root
    from quayside.executors.factory import executor_for

    hosts = dict(target.hosts)

    def current(name: str) -> str | None:
        executor = executor_for(name, hosts[name])
        try:
            facts = read_host_facts(executor, host_deploy_root(target.deploy_root, name))
        finally:
            executor.close()
        return facts.current

    result = run_on_hosts(target.host_names, current, max_parallel=target.env.max_parallel)
    return [
        HostFound(o.host, o.value) if o.ok else HostFound(o.host, None, _first_line(o.message))
        for o in result.outcomes
    ]


def read_config_versions(target: Target, release: Release) -> list[HostFound]:
    """The version directory each host the config release targeted (``details.hosts``, by
    default every host of the environment) serves for its service (``details.service``).

    A service no longer in the environment's inventory makes every host unreadable (named)."""
    from quayside.config.publish_served import served_versions

    details = release.details or {}
    wanted = details.get("hosts")
    names = [h for h in target.host_names if not isinstance(wanted, list) or h in wanted]
    service_name = str(details.get("service"))
    service = target.env.config.get(service_name)
    if service is None:
        why = f"{target.app_name}/{target.env_name} no longer has config service {service_name!r}"
        return [HostFound(h, None, why) for h in names]
    hosts = dict(target.hosts)
    found = served_versions({h: hosts[h] for h in names}, service, target.env.max_parallel)
    return [
        HostFound(h, version, _first_line(error) if error else None) for h, version, error in found
    ]


def read_image_serving(target: Target, release: Release) -> list[HostFound]:
    """What each Docker host serves: the digest and config version of the container its
    nginx upstream sends traffic to (else its newest running container of the app)."""
    from quayside.executors.factory import executor_for
    from quayside.images.containers_docker import connect
    from quayside.images.containers_spec import serves_label
    from quayside.images.image_release_host import read_state

    hosts = dict(target.hosts)
    image = target.app.image
    if image is None:
        why = f"{target.app_name} is no longer an image app"
        return [HostFound(h, None, why) for h in target.host_names]

    def serving(name: str) -> str | None:
        host = hosts[name]
        if host.docker is None:
            raise ValueError(f"hosts.{name}.docker is not set")
        client = connect(name, host.docker, timeout_s=30, login=host)
        executor = executor_for(name, host)
        try:
            state = read_state(client, executor, image.run, target.app_name, target.env_name)
        finally:
            client.close()
            executor.close()
        s = state.serving
        return None if s is None else serves_label(s.digest, s.config_version)

    result = run_on_hosts(target.host_names, serving, max_parallel=target.env.max_parallel)
    return [
        HostFound(o.host, o.value) if o.ok else HostFound(o.host, None, _first_line(o.message))
        for o in result.outcomes
    ]


GIT = ServedBy(
    key="release_id",
    kinds=frozenset({ReleaseKind.deploy, ReleaseKind.rollback}),
    read=read_git_current,
    nothing="no release",
    named={},
)
CONFIG = ServedBy(
    key="version_dir",
    kinds=frozenset({ReleaseKind.config}),
    read=read_config_versions,
    nothing="files never published",
    named={INITIAL_VERSION: "files from before the first publish"},
)

IMAGE = ServedBy(
    key="serves",
    kinds=frozenset({ReleaseKind.image}),
    read=read_image_serving,
    nothing="no container",
    named={},
)

SERVED_BY: Mapping[ReleaseKind, ServedBy] = {
    ReleaseKind.deploy: GIT,
    ReleaseKind.rollback: GIT,
    ReleaseKind.config: CONFIG,
    ReleaseKind.image: IMAGE,
}
"""Release kind -> how its hosts are read back (kinds not listed have no host reading)."""
