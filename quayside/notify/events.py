"""Release events and how they read in a chat message (Chinese + English, plain Markdown that
DingTalk, WeCom and Slack all display)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, urlsplit

EVENT_LABELS: Final[dict[str, str]] = {
    "approval_needed": "待审批 / Approval needed",
    "approved": "已批准 / Approved",
    "rejected": "已拒绝 / Rejected",
    "succeeded": "发布成功 / Succeeded",
    "failed": "发布失败 / Failed",
    "rolled_back": "已回滚 / Rolled back",
}
"""The release events Quayside announces, with their bilingual label."""

EVENTS: Final[tuple[str, ...]] = tuple(EVENT_LABELS)
"""Known event names: approval_needed, approved, rejected, succeeded, failed, rolled_back."""

_MARKERS: Final[dict[str, str]] = {
    "approval_needed": "⏳",
    "approved": "✅",
    "rejected": "⛔",
    "succeeded": "✅",
    "failed": "❌",
    "rolled_back": "↩️",
}


@dataclass(frozen=True)
class ReleaseEvent:
    """Something that happened to a release, as told to people.

    Attributes:
        app: the app name from quayside.yaml.
        env: the environment name.
        event: one of :data:`EVENTS`; an unknown name is shown as is.
        version: the version, tag or commit being released, if known.
        actor: who requested, approved or rejected, if known.
        url: the Prefect UI link to the run (only http(s) links are shown).
        details: free Markdown shown under the summary (diff summary, error, comment).
    """

    app: str
    env: str
    event: str
    version: str | None = None
    actor: str | None = None
    url: str | None = None
    details: str = field(default="")

    @property
    def label(self) -> str:
        """The bilingual label of :attr:`event` (the raw name if unknown)."""
        return EVENT_LABELS.get(self.event, self.event)


def _inline(value: str) -> str:
    """A value safe on one Markdown line: no line breaks, no stray emphasis markers."""
    return " ".join(value.split()).replace("*", "∗").replace("`", "'")


def _link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL, with characters that end a Markdown link
    target percent-encoded; otherwise ``None``."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return quote(url.strip(), safe=":/?#[]@!$&'*+,;=%~-._")


def render(event: ReleaseEvent) -> tuple[str, str]:
    """The subject and Markdown body announcing ``event``.

    Args:
        event: what happened.

    Returns:
        ``(subject, markdown)``: a one-line subject such as
        ``"[Quayside] web prod: 发布成功 / Succeeded"`` and a Markdown body with the app,
        environment, version, actor, details and a link to the run.

    Example:
        >>> subject, body = render(ReleaseEvent("web", "prod", "failed", version="v1.2"))
        >>> subject
        '[Quayside] web prod: 发布失败 / Failed'
    """
    app, env = _inline(event.app), _inline(event.env)
    subject = f"[Quayside] {app} {env}: {event.label}"
    marker = _MARKERS.get(event.event, "ℹ️")
    lines = [
        f"### {marker} {event.label}",
        "",
        f"- **应用 / App:** {app}",
        f"- **环境 / Env:** {env}",
    ]
    if event.version:
        lines.append(f"- **版本 / Version:** {_inline(event.version)}")
    if event.actor:
        lines.append(f"- **操作人 / By:** {_inline(event.actor)}")
    if event.details.strip():
        lines += ["", event.details.strip()]
    link = _link(event.url)
    if link:
        lines += ["", f"[查看运行 / Open the run]({link})"]
    return subject, "\n".join(lines)
