"""What every host of one deploy or rollback gets: the release, where it goes on each host,
and the variables its hooks see."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from quayside.commands.release import release_dir
from quayside.deploy import scripts
from quayside.deploy.source import release_env
from quayside.inventory.models import HealthCheck, Hooks
from quayside.manifest import Manifest
from quayside.plans.release import ReleaseTarget

#: changes up to this size travel as a tar stream in the stage round trip; larger ones by rsync
INLINE_MAX_BYTES = 8 * 1024 * 1024

T = TypeVar("T")


class Memo:
    """A thread-safe memo: the first caller of a key computes, the others wait and share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[object, ...], Any] = {}

    def get(self, key: tuple[object, ...], compute: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._values:
                self._values[key] = compute()
            value: T = self._values[key]
            return value


@dataclass(frozen=True)
class ReleaseSpec:
    """What every host of one deploy gets (the same for all hosts)."""

    app: str
    env: str
    release_id: str
    commit_sha: str
    ref: str
    payload_dir: Path
    manifest: Manifest
    deploy_root: str
    shared_paths: tuple[str, ...] = ()
    keep_releases: int = 5
    #: release ids the prune never deletes (nor counts): the hosts hold the only copy of
    #: those releases (``quayside.ledger.sole_copies``)
    protected: frozenset[str] = frozenset()
    hooks: Hooks = field(default_factory=Hooks)
    health: HealthCheck | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    inline_max_bytes: int = INLINE_MAX_BYTES
    #: where tar streams larger than ``inline_max_bytes`` are written, once per deploy, to be
    #: streamed to every host through OpenSSH (the caller deletes it); None: rsync instead
    scratch_dir: Path | None = None
    #: the manifest the hosts probably hold (e.g. the previous commit's, as recorded on the
    #: hosts): a host whose manifest file is exactly its JSON does not send it back
    known_manifest: Manifest | None = None
    #: host -> its facts after the last deploy (``HostReport.facts_after``): a host whose
    #: facts are still these is staged in one guarded round trip, without reading them first
    expected_facts: Mapping[str, str] = field(default_factory=dict)
    #: seconds after a switch before the host copies the new release for the next deploy
    next_delay_s: int = scripts.NEXT_DELAY_S
    #: plans, manifest JSON and tar streams shared by hosts with identical facts: a fleet of
    #: like hosts parses the (large) current manifest and plans once, not once per host
    memo: Memo = field(default_factory=Memo, compare=False, repr=False)

    def root_for(self, host: str) -> str:
        return scripts.host_deploy_root(self.deploy_root, host)

    def target(self) -> ReleaseTarget:
        """What the plan compares each host's facts with."""
        return ReleaseTarget(
            self.release_id, self.manifest, self.shared_paths, self.keep_releases, self.protected
        )

    def manifest_json(self) -> str:
        """The manifest as recorded on the hosts (payload + shared paths), computed once."""
        return self.memo.get(
            ("manifest",), lambda: self.manifest.with_shared(self.shared_paths).to_json()
        )

    def manifest_sha256(self) -> str:
        """sha256 of the manifest file as written on the hosts."""
        text = self.manifest_json()
        return self.memo.get(("new",), lambda: hashlib.sha256(text.encode()).hexdigest())

    def known_manifest_sha256(self) -> str | None:
        """sha256 of the known manifest's file (its JSON), computed once."""
        known = self.known_manifest
        if known is None:
            return None
        return self.memo.get(
            ("known",), lambda: hashlib.sha256(known.to_json().encode()).hexdigest()
        )

    def env_for(self, host: str, root: str, previous: str | None) -> dict[str, str]:
        out = host_env(self, host, root)
        out["QUAYSIDE_PREVIOUS_RELEASE"] = previous or ""
        return out


@dataclass(frozen=True)
class RollbackSpec:
    """What a rollback switches every host to."""

    app: str
    env: str
    release_id: str
    commit_sha: str
    ref: str
    deploy_root: str
    shared_paths: tuple[str, ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    health: HealthCheck | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    #: the app's keep_releases: exactly that many release dirs stay after the switch (the
    #: release, the one it replaced, the newest others); None prunes nothing
    keep_releases: int | None = None
    #: release ids the prune never deletes (nor counts): the only copy of their release
    protected: frozenset[str] = frozenset()

    def root_for(self, host: str) -> str:
        return scripts.host_deploy_root(self.deploy_root, host)


class ReleaseOnHost(Protocol):
    """What :func:`host_env` reads (a ReleaseSpec or a RollbackSpec)."""

    @property
    def app(self) -> str: ...
    @property
    def env(self) -> str: ...
    @property
    def release_id(self) -> str: ...
    @property
    def commit_sha(self) -> str: ...
    @property
    def ref(self) -> str: ...
    @property
    def variables(self) -> Mapping[str, str]: ...


def host_env(spec: ReleaseOnHost, host: str, root: str) -> dict[str, str]:
    """The variables hooks and health commands see on ``host``: the environment's own, the
    QUAYSIDE_* of the release, and where it is on the host."""
    out = release_env(
        app=spec.app,
        env=spec.env,
        release_id=spec.release_id,
        commit_sha=spec.commit_sha,
        ref=spec.ref,
        extra=spec.variables,
    )
    out.update(
        QUAYSIDE_HOST=host,
        QUAYSIDE_DEPLOY_ROOT=root,
        QUAYSIDE_RELEASE_DIR=release_dir(root, spec.release_id),
    )
    return out
