"""Release notifications without Prefect: what a message says (:mod:`.events`), the exact JSON
each chat robot expects (:mod:`.payloads`) and one HTTP POST that never leaks the webhook URL
(:mod:`.http`). The Prefect blocks in ``quayside/blocks/notify_*.py`` and
``quayside/tasks/notify.py`` use them."""

from quayside.notify.events import EVENT_LABELS, EVENTS, ReleaseEvent, render
from quayside.notify.http import post_json
from quayside.notify.payloads import (
    check_wecom_response,
    dingtalk_markdown,
    truncate_utf8,
    wecom_markdown,
)

__all__ = [
    "EVENTS",
    "EVENT_LABELS",
    "ReleaseEvent",
    "check_wecom_response",
    "dingtalk_markdown",
    "post_json",
    "render",
    "truncate_utf8",
    "wecom_markdown",
]
