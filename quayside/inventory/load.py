"""Reading quayside.yaml: YAML errors and validation errors become one ``ConfigError`` whose
message lists ``<file>: <key path>: <what was expected>`` lines — never a traceback."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from quayside.errors import ConfigError
from quayside.inventory.models import Inventory

MAX_BYTES = 2 * 1024 * 1024


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(error: ValidationError, source: str) -> list[str]:
    """One line per problem: ``source: key.path[2]: message``."""
    lines: list[str] = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not str(p).startswith("function-"))
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see `quayside check --help`)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "string_pattern_mismatch":
            message = f"'{item.get('input')}' is not a valid name ({message})"
        if not loc and "\n" in message:
            lines.extend(f"{source}: {line}" for line in message.splitlines())
        elif not loc and ": " in message:
            lines.append(f"{source}: {message}")
        else:
            lines.append(f"{source}: {_key_path(loc)}: {message}")
    return lines


#: libyaml's safe loader when PyYAML has it (several times faster), else the Python one
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_inventory(text: str, source: str = "quayside.yaml") -> Inventory:
    """Validate inventory ``text``; ``source`` names it in messages.

    Raises:
        ConfigError: with one line per problem, each naming the key path.
    """
    try:
        data: Any = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: {where}not valid YAML ({problem})") from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty; see README.md for an example")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping (hosts:, apps:, ...)")
    try:
        return Inventory.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(format_validation_error(e, source))) from None


def load_inventory(path: Path) -> Inventory:
    """Read and validate the inventory file at ``path``.

    Raises:
        ConfigError: the file is missing, unreadable, too large or invalid.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file",
            hint="create it (see README.md) or point QUAYSIDE_INVENTORY at it",
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    if size > MAX_BYTES:
        raise ConfigError(f"{path}: file is larger than {MAX_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    return _parsed(text, str(path))


#: the last inventory text parsed and its model (a release run reads the file several times -
#: to resolve its target, to check its submitter, to notify - and the model is immutable)
_last: tuple[str, str, Inventory] | None = None
_last_lock = threading.Lock()


def _parsed(text: str, source: str) -> Inventory:
    """:func:`parse_inventory`, reusing the model when the text (and its name) is the one
    parsed last: the same bytes give the same model."""
    global _last
    with _last_lock:
        last = _last
    if last is not None and last[0] == source and last[1] == text:
        return last[2]
    inventory = parse_inventory(text, source)
    with _last_lock:
        _last = (source, text, inventory)
    return inventory
