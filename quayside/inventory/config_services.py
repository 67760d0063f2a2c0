"""How an environment's hosts take the config center's files of one service (quayside.yaml
``apps.<app>.environments.<env>.config.<service>``): where the files go, which checker
validates a staged set, how the service picks a change up and how a publish is verified.

A config project of the config center is an app of quayside.yaml, its environments the app's,
so ``DNS/release/dnsmasq/hosts`` goes to the hosts of app ``DNS``'s environment ``release``,
into the ``dnsmasq`` service's ``dir``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ServiceKind = Literal["dnsmasq", "nginx", "command"]

#: Placeholders a command or path may hold; each is replaced inside one argv element only.
PLACEHOLDERS = ("{host}", "{address}", "{dir}", "{staged}", "{main}")


class ConfigService(BaseModel):
    """One service's config files on the environment's hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ServiceKind = Field(
        "command",
        description="dnsmasq or nginx (their checker, reload and verify by default), or "
        "command (give check, reload and verify yourself)",
    )
    dir: str = Field(
        description="the directory the service reads its files from, absolute; {host} is the "
        "host's name. Quayside makes it a symlink to <dir>.versions/<version> and swaps it "
        "(a plain directory found there on the first publish becomes the first version)"
    )
    main_file: str | None = Field(
        None,
        description="the file the checker is given (dnsmasq: dnsmasq.conf, nginx: nginx.conf)",
    )
    check: list[str] | None = Field(
        None,
        description="argv validating the staged set before anything live changes; "
        "{staged} is the staged directory, {main} the staged main file (dnsmasq default: "
        "dnsmasq --test --conf-file={main}; nginx: nginx -t -q -c {main})",
    )
    reload: list[str] | None = Field(
        None,
        description="argv making the service re-read the files that a reload picks up "
        "(dnsmasq default: systemctl reload dnsmasq, a SIGHUP; nginx: nginx -s reload)",
    )
    restart: list[str] | None = Field(
        None,
        description="argv for a change a reload does not pick up (dnsmasq default: "
        "systemctl restart dnsmasq; nginx and command: the reload)",
    )
    reload_files: list[str] | None = Field(
        None,
        description="glob patterns of the files a reload picks up; a change to any other file "
        "restarts the service (dnsmasq default: hosts, *.hosts, hosts.d/* - dnsmasq re-reads "
        "its hosts files on SIGHUP but not dnsmasq.conf; nginx and command: every file)",
    )
    dns_port: int = Field(53, ge=1, le=65535, description="dnsmasq: the port to verify on")
    dns_server: str = Field(
        "{address}", description="dnsmasq: the address to query ({address}: the host's)"
    )
    verify_url: str | None = Field(
        None,
        description="nginx (or command): an HTTP(S) URL that must answer 2xx/3xx (an nginx or "
        "command service needs this or verify)",
    )
    verify_text: str | None = Field(
        None, description="text the verify_url's answer must contain (e.g. a version marker)"
    )
    verify: list[str] | None = Field(
        None,
        description="argv verifying the service after a reload (exit 0 = good; an nginx or "
        "command service needs this or verify_url)",
    )
    verify_timeout_s: float = Field(
        5, gt=0, le=300, description="how long a verify may keep trying before the host fails"
    )
    keep_versions: int = Field(5, ge=2, le=100, description="versions kept on each host")

    @field_validator("dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        path = PurePosixPath(value)
        if (
            not value.startswith("/")
            or ".." in path.parts
            or str(path) != value
            or value == "/"
            or any(ord(c) < 32 for c in value)
        ):
            raise ValueError(
                f"must be an absolute, normalised path below /, without '..', got '{value}'"
            )
        return value

    @field_validator("main_file")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is None:
            return value
        path = PurePosixPath(value)
        if value.startswith("/") or ".." in path.parts or str(path) != value:
            raise ValueError(f"must be a relative path inside dir, got '{value}'")
        return value

    @field_validator("check", "reload", "restart", "verify")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0] or any("\x00" in a for a in value)):
            raise ValueError("must be a non-empty argv list without NUL bytes")
        return value

    @field_validator("verify_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError(f"must start with http:// or https://, got '{value}'")
        return value

    @model_validator(mode="after")
    def _kind_needs(self) -> ConfigService:
        if self.kind in ("dnsmasq", "nginx") and self.main_file is None:
            raise ValueError(f"main_file: a {self.kind} service needs its main config file")
        if self.kind == "command":
            missing = [k for k in ("check", "reload") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)}: a command service needs them")
        if self.kind in ("nginx", "command") and self.verify_url is None and self.verify is None:
            # without one a publish would count a host as verified having checked nothing
            article = "an" if self.kind == "nginx" else "a"
            raise ValueError(
                f"{article} {self.kind} service needs a verification: add verify_url (an HTTP "
                "probe that must answer 2xx/3xx after the reload) or verify (an argv that exits 0)"
            )
        return self
