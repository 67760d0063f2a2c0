"""Where a config item or variable lives: project / environment / service / filename, as users
of the older config center address them (``/DNS/release/dnsmasq/dnsmasq.conf``).

Every part is checked here, once, before anything is stored or looked up: the filename becomes
a path on hosts, so traversal (``..``), absolute paths, NUL bytes, newlines and other control
characters, backslashes and empty segments are refused with the field named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quayside.errors import InputError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
"""Project, environment and service names: the inventory's name rule."""
SEGMENT_RE = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
"""Variable names are template identifiers."""
MAX_FILENAME_CHARS = 255
MAX_SEGMENTS = 8


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_name(field: str, value: object) -> str:
    """``value`` if it is a valid project/environment/service name.

    Raises:
        InputError: naming ``field`` and the rule.
    """
    if not isinstance(value, str) or not value:
        raise InputError(f"{field}: required, a non-empty name")
    if NAME_RE.fullmatch(value) is None:
        raise InputError(
            f"{field}: {_shown(value)} is not a name (letters, digits, '.', '_', '-'; "
            "starting with a letter or digit; at most 63 characters)"
        )
    return value


def check_filename(value: object, field: str = "filename") -> str:
    """``value`` if it is a safe relative file path (``dnsmasq.conf``, ``conf.d/web.conf``).

    Raises:
        InputError: naming ``field`` and what is wrong (traversal, absolute, NUL, control
            character, backslash, empty segment, odd character, too long).
    """
    if not isinstance(value, str) or not value:
        raise InputError(f"{field}: required, a relative file path")
    if "\x00" in value:
        raise InputError(f"{field}: contains a NUL byte")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"{field}: {_shown(value)} contains a newline or control character")
    if "\\" in value:
        raise InputError(f"{field}: {_shown(value)} contains a backslash; separate with '/'")
    if value.startswith("/"):
        raise InputError(f"{field}: {_shown(value)} is absolute; give a relative path")
    if len(value) > MAX_FILENAME_CHARS:
        raise InputError(f"{field}: longer than {MAX_FILENAME_CHARS} characters")
    segments = value.split("/")
    if any(s in (".", "..") for s in segments):
        raise InputError(f"{field}: {_shown(value)} has a '.' or '..' segment (path traversal)")
    if any(s == "" for s in segments):
        raise InputError(f"{field}: {_shown(value)} has an empty path segment")
    if len(segments) > MAX_SEGMENTS:
        raise InputError(f"{field}: more than {MAX_SEGMENTS} directory levels")
    for segment in segments:
        if SEGMENT_RE.fullmatch(segment) is None:
            raise InputError(
                f"{field}: {_shown(value)} has characters outside letters, digits and "
                "'.', '_', '-', '@', '+'"
            )
    return value


def check_variable_name(value: object, field: str = "name") -> str:
    """``value`` if it is a valid variable name (a template identifier).

    Raises:
        InputError: naming ``field``.
    """
    if not isinstance(value, str) or VARIABLE_RE.fullmatch(value) is None:
        shown = _shown(value) if isinstance(value, str) else "a non-string"
        raise InputError(
            f"{field}: {shown} is not a variable name (letters, digits, '_'; not starting "
            "with a digit; at most 128 characters)"
        )
    return value


@dataclass(frozen=True)
class EnvAddress:
    """A project's environment: where variables live."""

    project: str
    environment: str

    def __post_init__(self) -> None:
        check_name("project", self.project)
        check_name("environment", self.environment)

    @classmethod
    def parse(cls, text: str) -> EnvAddress:
        """``DNS/release`` → ``EnvAddress("DNS", "release")``.

        Raises:
            InputError: not two names separated by '/'.
        """
        parts = text.split("/") if isinstance(text, str) else []
        if len(parts) != 2:
            raise InputError(f"environment address {_shown(str(text))}: expected PROJECT/ENV")
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.project}/{self.environment}"


@dataclass(frozen=True)
class ItemAddress:
    """A config item: project / environment / service / filename."""

    project: str
    environment: str
    service: str
    filename: str

    def __post_init__(self) -> None:
        check_name("project", self.project)
        check_name("environment", self.environment)
        check_name("service", self.service)
        check_filename(self.filename)

    @classmethod
    def parse(cls, text: str) -> ItemAddress:
        """``DNS/release/dnsmasq/dnsmasq.conf`` → an address (the filename may hold '/').

        Raises:
            InputError: fewer than four parts, or a part that is not valid.
        """
        parts = text.split("/", 3) if isinstance(text, str) else []
        if len(parts) != 4:
            raise InputError(
                f"config address {_shown(str(text))}: expected PROJECT/ENV/SERVICE/FILENAME"
            )
        return cls(*parts)

    @property
    def env(self) -> EnvAddress:
        return EnvAddress(self.project, self.environment)

    @property
    def path(self) -> str:
        """``/project/environment/service/filename``: the key the pull endpoint answers with."""
        return f"/{self}"

    def __str__(self) -> str:
        return f"{self.project}/{self.environment}/{self.service}/{self.filename}"
