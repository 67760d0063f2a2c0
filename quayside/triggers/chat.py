"""Chat commands (DingTalk and others), in Chinese and English, parsed into dataclasses.

The text is normalised first (NFKC: full-width letters, digits, spaces and punctuation become
ASCII), leading ``@mentions`` are removed and whitespace is collapsed. Each command is one regular
expression with broad captures; names are then validated one by one so the error says which
name is wrong. Anything that does not parse raises :class:`ParseError` carrying the help text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from quayside.triggers.errors import ParseError

MAX_TEXT_CHARS = 1000
MAX_COMMENT_CHARS = 500
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}")
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Deploy:
    """Deploy ``app`` to ``env`` (at ``ref`` if given, else the environment's default)."""

    app: str
    env: str
    ref: str | None = None


@dataclass(frozen=True)
class Rollback:
    """Roll ``app`` in ``env`` back to release ``to`` (default: the previous one)."""

    app: str
    env: str
    to: str | None = None


@dataclass(frozen=True)
class Approve:
    """Approve (or reject) the paused run ``run_id``."""

    run_id: str
    reject: bool = False
    comment: str = ""


@dataclass(frozen=True)
class Status:
    """Show what is deployed for ``app`` (in ``env``, or everywhere)."""

    app: str
    env: str | None = None


@dataclass(frozen=True)
class Help:
    """Show the help text."""


Command = Deploy | Rollback | Approve | Status | Help

HELP_TEXT = """\
Quayside 命令 / commands:
  执行dev环境web流水线 [版本]     deploy web to dev [ref]
  发布 web 到 prod [版本]          deploy web to prod v1.2
  回滚 web prod [到 版本]          rollback web prod [to RELEASE]
  审批 <运行ID> 通过|拒绝 [备注]   approve <run-id> [comment] / reject <run-id> [comment]
  状态 web [prod]                  status web [prod]
  帮助                             help
名称只能包含字母、数字、. _ - / names use letters, digits, '.', '_', '-'."""

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?:帮助|help|\?)", re.I), "help"),
    (
        re.compile(r"执行\s*(?P<env>\S+?)\s*环境\s*(?P<app>\S+?)\s*流水线(?:\s+(?P<ref>\S+))?"),
        "deploy",
    ),
    (
        re.compile(r"(?:发布|部署)\s*(?P<app>\S+?)\s*到\s*(?P<env>\S+?)(?:\s+(?P<ref>\S+))?"),
        "deploy",
    ),
    (re.compile(r"deploy\s+(?P<app>\S+)\s+to\s+(?P<env>\S+)(?:\s+(?P<ref>\S+))?", re.I), "deploy"),
    (re.compile(r"回滚\s*(?P<app>\S+?)\s+(?P<env>\S+?)(?:\s+(?:到\s*)?(?P<to>\S+))?"), "rollback"),
    (
        re.compile(r"rollback\s+(?P<app>\S+)\s+(?P<env>\S+)(?:\s+to\s+(?P<to>\S+))?", re.I),
        "rollback",
    ),
    (
        re.compile(
            r"审批\s*(?P<run>[^\s通同拒驳]+)\s*(?P<decision>通过|同意|拒绝|驳回)"
            r"(?:\s*(?P<comment>.+))?",
            re.S,
        ),
        "approve",
    ),
    (
        re.compile(
            r"(?P<decision>approve|reject)\s+(?P<run>\S+)(?:\s+(?P<comment>.+))?", re.I | re.S
        ),
        "approve",
    ),
    (re.compile(r"状态\s*(?P<app>\S+?)(?:\s+(?P<env>\S+))?"), "status"),
    (re.compile(r"status\s+(?P<app>\S+)(?:\s+(?P<env>\S+))?", re.I), "status"),
]
_MENTION = re.compile(r"^(?:@\S+\s*)+")
_REJECT_WORDS = {"拒绝", "驳回", "reject"}


def normalise(text: str, robot_name: str | None = None) -> str:
    """NFKC-normalise, drop ``@robot`` mentions and collapse whitespace.

    Args:
        text: the raw chat text.
        robot_name: the robot's display name; ``@<robot_name>`` is removed anywhere.

    Returns:
        The cleaned text.
    """
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u200b", "").replace("\ufeff", "")
    if robot_name:
        text = text.replace(f"@{unicodedata.normalize('NFKC', robot_name)}", " ")
    text = " ".join(text.split())
    return _MENTION.sub("", text).strip()


def _fail(message: str) -> ParseError:
    return ParseError(message, help_text=HELP_TEXT)


def _check(
    value: str | None, what: str, pattern: re.Pattern[str], limit: int, optional: bool = False
) -> str | None:
    if value is None or value == "":
        if optional:
            return None
        raise _fail(f"missing {what}")
    if not pattern.fullmatch(value) or ".." in value:
        raise _fail(
            f"{what} {value[:40]!r} is not valid: start with a letter or digit, then letters, "
            f"digits, '.', '_', '-' (at most {limit} characters) / 名称格式不正确"
        )
    return value


def _name(value: str | None, what: str) -> str:
    checked = _check(value, what, NAME_RE, 64)
    assert checked is not None
    return checked


def _deploy(m: re.Match[str]) -> Command:
    return Deploy(
        app=_name(m["app"], "app name"),
        env=_name(m["env"], "environment name"),
        ref=_check(m["ref"], "ref", REF_RE, 128, optional=True),
    )


def _rollback(m: re.Match[str]) -> Command:
    return Rollback(
        app=_name(m["app"], "app name"),
        env=_name(m["env"], "environment name"),
        to=_check(m["to"], "release", REF_RE, 128, optional=True),
    )


def _approve(m: re.Match[str]) -> Command:
    run_id = _check(m["run"], "run id", RUN_ID_RE, 64)
    assert run_id is not None
    comment = (m["comment"] or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise _fail(f"comment is longer than {MAX_COMMENT_CHARS} characters")
    return Approve(run_id=run_id, reject=m["decision"].lower() in _REJECT_WORDS, comment=comment)


def _status(m: re.Match[str]) -> Command:
    env = _check(m["env"], "environment name", NAME_RE, 64, optional=True)
    return Status(app=_name(m["app"], "app name"), env=env)


_BUILDERS: dict[str, Callable[[re.Match[str]], Command]] = {
    "help": lambda m: Help(),
    "deploy": _deploy,
    "rollback": _rollback,
    "approve": _approve,
    "status": _status,
}


def parse_command(text: str, robot_name: str | None = None) -> Command:
    """Parse one chat message into a command.

    Args:
        text: the message text as received (``@robot`` mentions are removed here).
        robot_name: the robot's display name, removed wherever ``@<name>`` appears.

    Returns:
        A :class:`Deploy`, :class:`Rollback`, :class:`Approve`, :class:`Status` or
        :class:`Help`.

    Raises:
        ParseError: the text is empty, too long, matches no command or contains an invalid
            name; ``help_text`` (bilingual) is attached for the reply.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise _fail(f"message is longer than {MAX_TEXT_CHARS} characters")
    cleaned = normalise(text, robot_name)
    if not cleaned:
        raise _fail("empty message")
    for pattern, kind in _PATTERNS:
        match = pattern.fullmatch(cleaned)
        if match:
            return _BUILDERS[kind](match)
    raise _fail(f"not a command: {cleaned[:60]!r}")
