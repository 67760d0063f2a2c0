"""Telling people about a release: one call from any flow or task, never failing the release.

``notify_release_event`` is a plain function, not a Prefect task: it can be called inside
flows and inside tasks (a task cannot call a task's ``.fn`` with its own retries), adds no
task-run bookkeeping, and has nothing to retry — a notification is sent once per channel and
a failure is only a warning. Blocks are loaded synchronously (``_sync=True``) so it also works
when called from an async flow.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect.blocks.core import Block
from prefect.exceptions import MissingContextError
from prefect.logging.loggers import get_run_logger
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import SecretBytes, SecretStr

import quayside.blocks.notify_dingtalk
import quayside.blocks.notify_wecom
from quayside.errors import QuaysideError
from quayside.inventory import load_inventory
from quayside.notify.events import EVENTS, ReleaseEvent, render
from quayside.settings import load_settings

# Importing the block modules registers their types, so Block.load("slug/name") finds them.
BLOCK_TYPES: tuple[type[Block], ...] = (
    quayside.blocks.notify_dingtalk.DingTalkRobot,
    quayside.blocks.notify_wecom.WeComRobot,
)

_fallback_logger = logging.getLogger("quayside.notify")


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return _fallback_logger


def _current_run_url() -> str | None:
    """The UI page of the current flow run (``quayside.runs.ui_url_for``: Prefect 3.8's
    ``prefect.runtime.flow_run.ui_url`` points at ``/flow-runs/flow-run/<id>``, a page the
    UI does not have; the UI's own links are ``/runs/flow-run/<id>``)."""
    try:
        from prefect.runtime import flow_run

        from quayside.runs import ui_url_for

        run_id = flow_run.get_id()
        return ui_url_for(str(run_id)) if run_id else None
    except Exception:  # noqa: BLE001 - the link is a nicety; never fail for it
        return None


def _secret_values(block: Block) -> list[str]:
    """Every secret string held by ``block`` and the credential-like parts of secret URLs
    (query values, path segments), longest first, for redacting foreign error messages."""
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, (SecretStr, SecretBytes)):
            value = value.get_secret_value()
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="ignore")
            add_text(value)
        elif hasattr(value, "get_secret_value"):  # prefect SecretDict
            secret = value.get_secret_value()
            for item in secret.values() if isinstance(secret, dict) else [secret]:
                add_text(str(item))
        elif isinstance(value, dict):
            for item in value.values():
                add(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(item)

    def add_text(text: str) -> None:
        if len(text) < 4:
            return
        found.add(text)
        parts = urlsplit(text)
        if parts.scheme and parts.netloc:
            found.update(v for _, v in parse_qsl(parts.query) if len(v) >= 4)
            found.update(
                seg
                for seg in parts.path.split("/")
                if len(seg) >= 20 or (len(seg) >= 6 and any(c.isdigit() for c in seg))
            )

    for name in type(block).model_fields:
        add(getattr(block, name, None))
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _describe(error: BaseException, secrets: Sequence[str]) -> str:
    if isinstance(error, QuaysideError):
        text = str(error)
    elif isinstance(error, NotificationError):
        # Apprise-based blocks put the eavesdropped Apprise log (not the args) on the error
        lines = [line for line in error.log.splitlines() if line.strip()]
        important = [ln for ln in lines if ln.startswith(("[WARNING]", "[ERROR]", "[CRITICAL]"))]
        text = "; ".join(important or lines[-1:]) or "the notification was not sent"
    else:
        text = f"{type(error).__name__}: {error}".rstrip(": ")
    return redact(text, secrets)[:500]


def _load_block(ref: str) -> Block:
    block: Block = Block.load(ref, _sync=True)  # type: ignore[call-arg, assignment]
    return block


_QUIET_LOGGERS = ("apprise", "urllib3", "requests", "httpx", "httpcore")
"""Libraries behind Prefect's notification blocks that log request URLs (webhook credentials
included) at DEBUG/INFO: Apprise ("Slack POST URL: ..."), urllib3/requests, httpx."""
_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: dict[str, int] = {}


@contextmanager
def _quiet_http_loggers() -> Iterator[None]:
    """Raise :data:`_QUIET_LOGGERS` to WARNING while a third-party block sends (re-entrant and
    thread-safe; levels are restored when the last sender finishes)."""
    global _quiet_depth
    with _quiet_lock:
        if _quiet_depth == 0:
            for name in _QUIET_LOGGERS:
                logger = logging.getLogger(name)
                _quiet_saved[name] = logger.level
                if logger.getEffectiveLevel() < logging.WARNING:
                    logger.setLevel(logging.WARNING)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                for name, level in _quiet_saved.items():
                    logging.getLogger(name).setLevel(level)
                _quiet_saved.clear()


def _notify(block: NotificationBlock, body: str, subject: str) -> None:
    """Call ``block.notify`` synchronously, with failures raised (Apprise-based blocks such as
    SlackWebhook only report a failure when ``raise_on_failure`` is active)."""
    with block.raise_on_failure(), _quiet_http_loggers():
        method: Any = block.notify
        result = (
            method(body, subject, _sync=True) if hasattr(method, "aio") else method(body, subject)
        )
        if inspect.iscoroutine(result):
            run_coro_as_sync(result)


def send_to_channels(
    refs: Sequence[str],
    subject: str,
    body: str,
    *,
    load: Callable[[str], Block] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> int:
    """Send one message through each notification block in ``refs``; never raises.

    Args:
        refs: block references ``"block-type-slug/name"``.
        subject: the message subject.
        body: the Markdown body.
        load: turns a reference into a block (``Block.load`` from the Prefect API by default).
        logger: where warnings go (the run logger inside a run by default).

    Returns:
        How many channels accepted the message. Every failure (unknown block, a block that is
        not a notification block, HTTP error, non-zero ``errcode``, timeout) is one WARNING
        naming the block reference, with secrets of the block redacted.
    """
    log = logger or _logger()
    load = load or _load_block
    sent = 0
    for ref in refs:
        try:
            block = load(ref)
        except Exception as e:  # noqa: BLE001 - a notification never fails a release
            log.warning(
                "notification %s not sent: cannot load the block: %s", ref, _describe(e, [])
            )
            continue
        secrets = _secret_values(block)
        if not isinstance(block, NotificationBlock):
            log.warning(
                "notification %s not sent: %s is not a notification block",
                ref,
                type(block).__name__,
            )
            continue
        try:
            _notify(block, body, subject)
        except Exception as e:  # noqa: BLE001 - a notification never fails a release
            log.warning("notification %s not sent: %s", ref, _describe(e, secrets))
            continue
        sent += 1
    return sent


def notify_release_event(
    *,
    app: str,
    env: str,
    event: str,
    text: str = "",
    url: str | None = None,
    version: str | None = None,
    actor: str | None = None,
) -> int:
    """Tell the app's notification channels (``notify`` in quayside.yaml) about a release.

    A plain function, callable from flows and tasks (sync or async); it never raises and
    never fails the release: every problem is logged as a WARNING (the run logger inside a
    run, else the ``quayside.notify`` logger) and the next channel is tried.

    Args:
        app: the app name in quayside.yaml (its ``notify`` list names the blocks).
        env: the environment name.
        event: approval_needed, approved, rejected, succeeded, failed or rolled_back.
        text: Markdown details shown under the summary (diff summary, error, comment).
        url: link to the run; defaults to the current flow run's UI URL inside a run.
        version: the version, tag or commit released.
        actor: who requested, approved or rejected.

    Returns:
        How many channels accepted the message (0 when the app has none, or all failed).

    Example:
        ```python
        from quayside.tasks.notify import notify_release_event

        notify_release_event(app="web", env="prod", event="succeeded", version="v1.4.2")
        ```
    """
    log = _logger()
    if event not in EVENTS:
        log.warning("notification event %r is not one of %s; sent as is", event, ", ".join(EVENTS))
    try:
        inventory = load_inventory(load_settings().inventory_path)
    except Exception as e:  # noqa: BLE001 - a notification never fails a release
        log.warning("notifications for %s %s not sent: %s", app, env, _describe(e, []))
        return 0
    app_config = inventory.apps.get(app)
    if app_config is None:
        log.warning("notifications for %s %s not sent: no app %r in the inventory", app, env, app)
        return 0
    if not app_config.notify:
        log.debug("app %s has no notification channels", app)
        return 0
    subject, body = render(
        ReleaseEvent(
            app=app,
            env=env,
            event=event,
            version=version,
            actor=actor,
            url=url or _current_run_url(),
            details=text,
        )
    )
    return send_to_channels(app_config.notify, subject, body, logger=log)
