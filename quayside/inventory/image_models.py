"""quayside.yaml for image apps: how an app's image is built, where each environment's
registry is, which Docker engine each host runs, and how the app's container is run.

An app with an ``image:`` section is released as containers (image build → push → release →
promote by digest) instead of release directories::

    hosts:
      web-1: {address: 10.0.0.5, docker: {url: "ssh://deploy@10.0.0.5"}}
    apps:
      shop:
        repo: https://git.example.com/shop.git
        image:
          build: {dockerfile: Dockerfile, artifact_path: /app/shop.war}
          run: {port: 8080, health_path: /health, config_service: app, config_mount: /etc/shop}
        environments:
          test:
            hosts: [web-1]
            registry: {url: "https://registry-test.example.com", repository: shop,
                       username: ci, password: {env: TEST_REGISTRY_PASSWORD}}

Each part is its own model so that the build, the registries and the run settings can grow
without touching each other.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: a repository name as the OCI distribution spec writes it (lowercase path components)
REPOSITORY_PATTERN = (
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryRef(_Strict):
    """One environment's registry: where the app's image lives there, and as whom to push
    and pull (a SecretRef name under the inventory's ``secrets:``, or inline SecretRef)."""

    url: str = Field(description="registry base URL, http(s)://host[:port]")
    repository: str = Field(
        pattern=REPOSITORY_PATTERN, description="repository of the app in that registry"
    )
    username: str | None = Field(None, description="registry user (none: anonymous)")
    password_secret: str | None = Field(
        None, description="name of the inventory secret holding the registry password"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?/?", value):
            raise ValueError(f"expected http(s)://host[:port], got '{value}'")
        return value.rstrip("/")


class ImageBuild(_Strict):
    """How the app's image is built from its source at a ref."""

    dockerfile: str = Field("Dockerfile", description="path of the Dockerfile in the source")
    context: str = Field(".", description="build context directory in the source")
    build_args: dict[str, str] = Field(default_factory=dict)
    artifact_path: str | None = Field(
        None,
        description="file inside the image (e.g. the war) whose sha256 is recorded at build "
        "and checked in every container before it takes traffic",
    )
    timeout_s: float = Field(1800, gt=0, le=6 * 3600)


SLOT_PATTERN = r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|localhost):\d{1,5}$"
"""A release slot: ``address:port`` a container of the app listens on (or is published to)."""


class ImageTraffic(_Strict):
    """The nginx on each Docker host that sends the app's traffic to the serving container.

    Quayside writes ``upstream_file`` (an ``upstream <upstream> { server <slot>; }`` block)
    into ``dir`` and publishes it exactly as config publish publishes files (stage beside the
    live set, ``check``, swap a symlink, ``reload``, probe ``url``, restore on failure); the
    main file includes it (``include upstream.conf;`` in the ``http`` block, resolved beside
    the main file, so the check sees the staged one) and proxies to ``http://<upstream>``.
    """

    dir: str = Field(description="nginx's config directory on the host ({host} allowed)")
    main_file: str = Field("nginx.conf", description="the main file nginx -t is given")
    upstream_file: str = Field("upstream.conf", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    upstream: str = Field(
        "app", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$", description="upstream name"
    )
    check: list[str] | None = Field(None, description="default: nginx -t -q -c {main}")
    reload: list[str] | None = Field(None, description="default: nginx -s reload")
    url: str = Field(
        description="a URL through nginx that must answer 2xx after the switch ({address}: "
        "the host's address)"
    )
    drain_s: float = Field(
        1.0,
        ge=0,
        le=300,
        description="seconds the old container keeps running after the "
        "switch, for requests nginx's old workers still send it",
    )
    keep_versions: int = Field(5, ge=2, le=100)


class ImageRun(_Strict):
    """How the app's container runs on a Docker host."""

    port: int = Field(8080, ge=1, le=65535, description="port the app listens on")
    health_path: str = Field("/", description="HTTP path that answers 2xx when healthy")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables")
    config_service: str | None = Field(
        None, description="config center service whose files are rendered for the container"
    )
    config_mount: str | None = Field(
        None, description="directory in the container where those files appear, read-only"
    )
    memory: str | None = Field(None, description="memory limit, e.g. '512m'")
    cpus: float | None = Field(None, gt=0, le=256)
    pids_limit: int | None = Field(None, ge=16, le=1_000_000)
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "unless-stopped"
    log_driver: str | None = None
    log_options: dict[str, str] = Field(default_factory=dict)
    keep_images: int = Field(5, ge=2, le=100, description="images kept per host for rollback")
    network: Literal["bridge", "host"] = Field(
        "bridge",
        description="bridge: the slot's address:port is published to the container's port; "
        "host: the container shares the host's network and listens on the slot itself "
        "(told through listen_env)",
    )
    slots: tuple[str, str] = Field(
        ("127.0.0.1:18080", "127.0.0.1:18081"),
        description="the two address:port pairs new and old containers take in turn (the new "
        "one starts beside the old one, on the other slot)",
    )
    listen_env: str | None = Field(
        "QUAYSIDE_LISTEN",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable telling the container its slot (address:port)",
    )
    health_timeout_s: float = Field(
        30, gt=0, le=3600, description="how long a new container may take to answer"
    )
    config_dir: str = Field(
        "/var/lib/quayside/images/{host}",
        description="directory on the host holding each container's rendered config files",
    )
    traffic: ImageTraffic | None = Field(
        None, description="the nginx fronting the app on each host (none: no switch)"
    )
    init: bool = Field(
        False,
        description="run an init process as PID 1 that forwards signals (docker --init): an "
        "app that ignores SIGTERM as PID 1 then stops at once instead of after stop_timeout_s",
    )
    stop_timeout_s: int = Field(
        10, ge=0, le=3600, description="seconds from SIGTERM to SIGKILL when stopping"
    )

    @field_validator("slots")
    @classmethod
    def _slots(cls, value: tuple[str, str]) -> tuple[str, str]:
        for slot in value:
            if not re.fullmatch(SLOT_PATTERN, slot):
                raise ValueError(f"expected address:port, got '{slot}'")
        if value[0] == value[1]:
            raise ValueError("the two slots must differ")
        return value

    @field_validator("config_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or any(ord(c) < 32 for c in value):
            raise ValueError(f"must be an absolute path without '..', got '{value}'")
        return value.rstrip("/")


class AppImage(_Strict):
    """An app released as an image."""

    build: ImageBuild = Field(default_factory=ImageBuild)
    run: ImageRun = Field(default_factory=ImageRun)


class DockerEndpoint(_Strict):
    """The Docker engine of a host: ``unix://`` (this machine), ``ssh://user@host`` or TLS
    ``tcp://host:2376`` (with client certificate files)."""

    url: str = Field(description="unix:///var/run/docker.sock, ssh://user@host, tcp://host:2376")
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.fullmatch(
            r"(unix:///\S+|ssh://[A-Za-z0-9._@:-]+|tcp://[A-Za-z0-9.-]+:\d{1,5})", value
        ):
            raise ValueError(
                f"expected unix:///path, ssh://user@host or tcp://host:port, got '{value}'"
            )
        return value
