"""quayside.yaml: the declarative inventory of hosts, groups, apps, environments and secrets.

Every model rejects unknown keys; cross-references (groups → hosts, environments → hosts or
groups, secrets by name) are checked once, in ``Inventory``'s validator, so that a wrong file
is reported with the key path of the offending value.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from quayside.inventory.config_services import ConfigService
from quayside.inventory.default_refs import LATEST_TAG, default_ref_errors
from quayside.inventory.image_models import AppImage, DockerEndpoint, RegistryRef
from quayside.inventory.task_templates import (
    TaskTemplate,
    TemplateId,
    reference_errors,
    template_keys,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Strict):
    """Where a secret lives: exactly one of a Prefect Secret block, an environment variable,
    or a Vault path (``path#key``). The value itself is never written in quayside.yaml."""

    prefect_secret: str | None = Field(None, description="name of a Prefect Secret block")
    env: str | None = Field(None, description="name of an environment variable")
    vault: str | None = Field(None, description="Vault KV path and key, 'secret/data/app#token'")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("prefect_secret", "env", "vault") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of prefect_secret, env or vault")
        if self.env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.env):
            raise ValueError(f"'{self.env}' is not an environment variable name")
        if self.vault is not None and "#" not in self.vault:
            raise ValueError("vault reference must be 'path#key'")
        return self


#: Host settings that only an SSH host uses (refused on a ``transport: local`` host).
SSH_ONLY_SETTINGS = frozenset(
    {"port", "user", "key_file", "known_hosts", "verify_host_key", "connect_timeout", "persist_s"}
)


class Host(Strict):
    """A machine Quayside deploys to: over SSH, or this machine itself (``transport: local``)."""

    address: str = Field(
        description="IP address or DNS name (a local host: 127.0.0.1 unless given; its "
        "health-check URLs use it as {address})"
    )
    port: int = Field(22, ge=1, le=65535)
    user: str = Field("deploy", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    transport: Literal["ssh", "local"] = Field(
        "ssh",
        description="'ssh': commands run over SSH as `user`. 'local': this machine - the "
        "same stage/switch/health commands run here through the local executor, as the "
        "platform's user, with a login environment (PATH, HOME, LANG; none of the "
        "platform's variables); give each local host its own directory with {host} in "
        "deploy_root. For the demo and single-machine setups; SSH settings do not apply",
    )
    key_file: str | None = Field(None, description="private key path (~ expanded)")
    known_hosts: str | None = Field(None, description="known_hosts file for this host")
    verify_host_key: bool = Field(
        True, description="verify the host key against known_hosts; false is an explicit opt-out"
    )
    connect_timeout: float = Field(10, gt=0, le=300)
    docker: DockerEndpoint | None = Field(
        None,
        description="the host's Docker engine, for image apps (quayside/inventory/image_models.py)",
    )
    persist_s: float = Field(
        60,
        ge=0,
        le=86400,
        description="keep the SSH connection open this many seconds after its last command, "
        "for the next command or run (OpenSSH ControlPersist, as Ansible's default 60 s); "
        "0 opens one connection per task and closes it",
    )

    @model_validator(mode="before")
    @classmethod
    def _local_address(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("transport") == "local" and "address" not in data:
            return {**data, "address": "127.0.0.1"}
        return data

    @model_validator(mode="after")
    def _local_without_ssh(self) -> Host:
        given = sorted(SSH_ONLY_SETTINGS & self.model_fields_set)
        if self.transport == "local" and given:
            raise ValueError(
                f"{', '.join(given)}: SSH settings, unused by a transport: local host (it runs "
                "commands on this machine as the platform's user); remove them, or use "
                "transport: ssh"
            )
        return self


class HealthCheck(Strict):
    """How to tell a release is serving: an HTTP URL or a command on the host."""

    url: str | None = Field(None, description="HTTP(S) URL that must answer 2xx/3xx")
    command: list[str] | str | None = Field(
        None, description="argv list, or an operator's script run with sh -c"
    )
    retries: int = Field(10, ge=0, le=1000)
    interval_s: float = Field(1.0, ge=0, le=600)
    timeout_s: float = Field(5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheck:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of url or command")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url must start with http:// or https://, got '{self.url}'")
        return self


Command = list[str] | str


class Hooks(Strict):
    """Operator-written commands run on each host around the switch. A string runs with
    ``sh -c``; release facts arrive as environment variables (QUAYSIDE_RELEASE, ...)."""

    pre_switch: list[Command] = Field(default_factory=list)
    post_switch: list[Command] = Field(default_factory=list)


class ApprovalPolicy(Strict):
    """Who must approve a release before it runs."""

    required: int = Field(0, ge=0, le=10, description="approvals needed; 0 = none")
    role: Literal["SUPER", "OWNER", "MASTER", "DEVELOPER"] = Field(
        "MASTER", description="minimum role of an approver"
    )
    allow_self_approval: bool = False
    allow_editor_approval: bool = Field(
        True,
        description="false: whoever edited a version being published (a config file saved "
        "since its last published version) may not approve its publish - the gate refuses "
        "their answers, records why and keeps waiting for another approver",
    )
    timeout_hours: float = Field(24, gt=0, le=24 * 30)
    rollback: bool = Field(
        True,
        description="rollbacks wait for the same approval; false lets a rollback (to a release "
        "that was approved when it was deployed) run at once, e.g. for on-call emergencies",
    )
    unattributed: Literal["two_approvers", "refuse", "one_approver"] = Field(
        "two_approvers",
        description="a run nobody authenticated started (the Prefect UI or API: its "
        "requested_by is a name someone typed) - two_approvers: it needs two approvers (at "
        "least `required`), so the requester can never be the only one; refuse: it is refused "
        "before anything is recorded (start it with a token: quayside deploy, the gateway, "
        "chat); one_approver: one approver as for any run (for a one-person setup such as "
        "the demo). The self-approval rule never compares with a typed name",
    )


class TagRule(Strict):
    """A git tag pattern that starts a release in an environment."""

    pattern: str = Field(description="regular expression matched against the tag name")
    environment: Name
    approval: bool = Field(False, description="ask for approval even if policy says none")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return value


class Environment(Strict):
    """One environment of an app (test, staging, prod, ...)."""

    hosts: list[Name] = Field(default_factory=list, description="host names")
    groups: list[Name] = Field(default_factory=list, description="host group names")
    deploy_root: str | None = Field(None, description="overrides the app's deploy_root")
    batch: int | str | None = Field(None, description="hosts per batch: N or 'N%'; all if unset")
    max_parallel: int = Field(10, ge=1, le=200)
    failure_threshold: int | str = Field(
        0, description="failed hosts tolerated (N or 'N%') before automatic rollback"
    )
    approval: ApprovalPolicy | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    config: dict[Name, ConfigService] = Field(
        default_factory=dict,
        description="config center services published to these hosts: service name -> "
        "where its files go and how they are checked, reloaded and verified",
    )
    registry: RegistryRef | None = Field(
        None, description="image apps: this environment's registry and repository"
    )
    default_ref: str | None = Field(
        None,
        description=f"the ref a deploy without one releases (chat: 'deploy web to dev'): a "
        f"branch such as main, or '{LATEST_TAG}' for the newest tag matching one of the app's "
        "tag rules for this environment",
    )

    @field_validator("default_ref")
    @classmethod
    def _safe_ref(cls, value: str | None) -> str | None:
        if value is not None and value != LATEST_TAG:
            from quayside.commands.git import check_ref
            from quayside.errors import InputError

            try:
                check_ref(value)
            except InputError as e:
                raise ValueError(e.message) from None
        return value

    @field_validator("batch", "failure_threshold")
    @classmethod
    def _count_or_percent(cls, value: int | str | None) -> int | str | None:
        if value is None or isinstance(value, int):
            if isinstance(value, int) and value < 0:
                raise ValueError("must not be negative")
            return value
        if not re.fullmatch(r"\d+%?", value.strip()):
            raise ValueError(f"expected a number or a percentage like '25%', got '{value}'")
        return value.strip()


def _absolute_posix(value: str) -> str:
    path = PurePosixPath(value)
    if not path.is_absolute() or ".." in path.parts or str(path) == "/":
        raise ValueError(f"must be an absolute path below /, without '..', got '{value}'")
    return str(path)


class App(Strict):
    """An application and how it is released."""

    space: Name = Field("default", description="the space (team) owning the app; roles live there")
    repo: str | None = Field(None, description="git URL (or local path) of the source")
    deploy_root: str = Field("/srv/app", description="directory holding releases/ and current")
    shared_paths: list[str] = Field(default_factory=list)
    build: list[Command] = Field(default_factory=list, description="run in the build directory")
    build_timeout_s: float = Field(600, gt=0)
    hooks: Hooks = Field(default_factory=Hooks)
    health_check: HealthCheck | None = None
    keep_releases: int = Field(5, ge=2, le=100)
    tag_rules: list[TagRule] = Field(default_factory=list)
    webhook_secret: SecretRef | None = Field(None, description="X-Gitlab-Token for this app")
    notify: list[str] = Field(
        default_factory=list,
        description="Prefect notification blocks, 'block-type-slug/name', told about releases",
    )
    image: AppImage | None = Field(
        None, description="released as a container image (build, push, release, promote)"
    )
    environments: dict[Name, Environment]

    @field_validator("deploy_root")
    @classmethod
    def _root(cls, value: str) -> str:
        return _absolute_posix(value)

    @field_validator("shared_paths")
    @classmethod
    def _shared(cls, value: list[str]) -> list[str]:
        for item in value:
            path = PurePosixPath(item)
            if path.is_absolute() or ".." in path.parts or not item.strip():
                raise ValueError(f"shared path '{item}' must be relative, without '..'")
        return value


class Inventory(Strict):
    """The whole quayside.yaml."""

    version: Literal[1] = 1
    hosts: dict[Name, Host] = Field(default_factory=dict)
    groups: dict[Name, list[Name]] = Field(default_factory=dict)
    apps: dict[Name, App] = Field(default_factory=dict)
    secrets: dict[Name, SecretRef] = Field(default_factory=dict)
    task_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="deprecated: numeric temp_id -> deployment name (task API); write a "
        "task template instead",
    )
    timezone: str = Field(
        "UTC",
        description="IANA time zone of the task API's exec_time and `deploy --at` times "
        "without an offset (the older platform's scripts send local time)",
    )
    task_templates: Annotated[dict[TemplateId, TaskTemplate], BeforeValidator(template_keys)] = (
        Field(
            default_factory=dict,
            description="numeric temp_id of the task API -> the deployment, fixed parameters "
            "and argument mapping it stands for (the older platform's task templates)",
        )
    )

    @model_validator(mode="after")
    def _references(self) -> Inventory:
        errors: list[str] = []
        for group, members in self.groups.items():
            for i, host in enumerate(members):
                if host not in self.hosts:
                    errors.append(f"groups.{group}[{i}]: unknown host '{host}'")
        for app_name, app in self.apps.items():
            for env_name, env in app.environments.items():
                where = f"apps.{app_name}.environments.{env_name}"
                for i, host in enumerate(env.hosts):
                    if host not in self.hosts:
                        errors.append(f"{where}.hosts[{i}]: unknown host '{host}'")
                for i, group in enumerate(env.groups):
                    if group not in self.groups:
                        errors.append(f"{where}.groups[{i}]: unknown group '{group}'")
                errors.extend(_shared_local_roots(self, where, app, env))
            for i, rule in enumerate(app.tag_rules):
                if rule.environment not in app.environments:
                    errors.append(
                        f"apps.{app_name}.tag_rules[{i}].environment: "
                        f"unknown environment '{rule.environment}'"
                    )
        if errors:
            raise ValueError("\n".join(errors))
        return self

    @model_validator(mode="after")
    def _template_and_default_ref_references(self) -> Inventory:
        errors = [*reference_errors(self), *default_ref_errors(self)]
        if errors:
            raise ValueError("\n".join(errors))
        return self


def _shared_local_roots(inventory: Inventory, where: str, app: App, env: Environment) -> list[str]:
    """Local hosts share this machine's file system: two of one environment must not deploy
    into the same directory (each needs ``{host}`` in the deploy root)."""
    root = env.deploy_root or app.deploy_root
    names = [*env.hosts, *(h for g in env.groups for h in inventory.groups.get(g, []))]
    seen: dict[str, str] = {}
    for name in dict.fromkeys(names):
        host = inventory.hosts.get(name)
        if host is None or host.transport != "local":
            continue
        path = root.replace("{host}", name)
        if path in seen:
            return [
                f"{where}: local hosts '{seen[path]}' and '{name}' would both deploy into "
                f"{path}; put {{host}} in deploy_root"
            ]
        seen[path] = name
    return []
