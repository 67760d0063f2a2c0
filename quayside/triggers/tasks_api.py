"""The task submission API (``POST /api/tasks``), compatible with the older platform's JSON.

Existing scripts (seed 000) post::

    {"task_name": "...", "temp_id": "1", "schedule": "ready", "exec_time": "2019-5-24 09:09:50",
     "args": "{'TAG': 'v1'}", "hosts": "{1: '172.16.0.101'}", "submitter": "...",
     "details": "...", "associated_user": "{'group-1': ['...']}", "executor": "..."}

:class:`TaskSubmission` validates that body (unknown fields rejected), :func:`to_request` turns it
into a :class:`RunRequest` that the gateway hands to ``quayside.runs``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from quayside.errors import InputError, NotFoundError
from quayside.inventory.task_templates import TaskTemplate
from quayside.triggers.literal import Mapping_, Scalar, Value, parse_mapping
from quayside.user_names import clean_name

DEFAULT_TIMEZONE = "Asia/Shanghai"
"""The older platform's scripts send ``exec_time`` as local time in this zone."""

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?")
"""A deployment name (``flow/deployment`` accepted) or a numeric alias."""
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,252}")
IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{8,200}")

_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")


def _mapping_field(value: object, name: str) -> Mapping_:
    try:
        return parse_mapping(value, name)
    except InputError as e:
        # the field path is added by pydantic; keep only the explanation
        message = e.message.removeprefix(f"{name}: ")
        raise PydanticCustomError("mapping", message) from None


def parse_exec_time(text: str) -> datetime:
    """Parse an ``exec_time`` string.

    Args:
        text: ``YYYY-M-D H:M:S`` local time (zero padding optional, as ``strptime`` reads it;
            ``/`` separators and a missing seconds part are accepted too) or ISO 8601, with or
            without an offset (``2019-05-24T09:09:50+08:00``, ``...Z``).

    Returns:
        A naive datetime (local wall time, to be placed in a timezone later) or an aware one
        when the text carried an offset.

    Raises:
        ValueError: the text matches none of the accepted forms.
    """
    text = text.strip()
    if len(text) > 40:
        raise ValueError("exec_time is too long")
    for fmt in _LOCAL_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "expected local time like '2019-5-24 09:09:50' or ISO 8601 like "
            "'2019-05-24T09:09:50+08:00'"
        ) from None


def to_utc(moment: datetime, tz: str | ZoneInfo, *, field: str = "exec_time") -> datetime:
    """Place a naive local time in ``tz`` (aware times keep their offset) and convert to UTC.

    Args:
        moment: a naive (local wall time) or aware datetime.
        tz: an IANA zone name such as ``Asia/Shanghai`` or a ``ZoneInfo``.
        field: the input's name, for the error message.

    Returns:
        An aware datetime in UTC.

    Raises:
        InputError: the zone is unknown, or the local time does not exist in it (skipped by a
            daylight-saving change). Ambiguous times (repeated hour) take the first occurrence.
    """
    zone = _zone(tz)
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment.astimezone(UTC)
    local = moment.replace(tzinfo=zone)
    converted = local.astimezone(UTC)
    if converted.astimezone(zone).replace(tzinfo=None) != moment:
        raise InputError(f"{field}: {moment:%Y-%m-%d %H:%M:%S} does not exist in {zone.key}")
    return converted


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown timezone {tz[:64]!r}", hint="use an IANA name such as Asia/Shanghai or UTC"
        ) from None


class TaskSubmission(BaseModel):
    """A task submitted through ``POST /api/tasks`` (the older platform's task JSON)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    task_name: str = Field(
        min_length=1, max_length=200, description="Free-text title shown with the run."
    )
    temp_id: str | int = Field(
        description="A task template's number (task_templates in quayside.yaml, as on the "
        "older platform) or a deployment name."
    )
    args: dict[str, Value] = Field(
        default_factory=dict,
        description="The template's arguments ({'TAG': 'v1', 'APP_NAME': 'Web'}), or a "
        "deployment's parameters; a JSON object or a Python dict literal string.",
    )
    hosts: dict[str | int, Value] = Field(
        default_factory=dict,
        description="Target hosts by group, e.g. {1: '172.16.0.101'}: inventory host addresses "
        "or names, all in the run's environment; JSON or Python literal.",
    )
    submitter: str | None = Field(
        default=None,
        max_length=100,
        description="Accepted for compatibility; the API token's user is the submitter "
        "(kept only as name characters).",
    )
    executor: str | None = Field(
        default=None,
        max_length=100,
        description="Sent by the older platform's scripts; accepted and ignored.",
    )
    schedule: Literal["ready", "new"] = Field(
        default="ready",
        description="'ready': run without approval if policy allows; 'new': require approval.",
    )
    exec_time: datetime | None = Field(
        default=None,
        description="When to run: local time '2019-5-24 09:09:50' (gateway timezone) or ISO 8601.",
    )
    details: str = Field(default="", max_length=2000, description="Free-text remarks.")
    associated_user: dict[str | int, Value] = Field(
        default_factory=dict,
        description="Users to notify, by group: {'group-1': ['name']}; JSON or Python literal.",
    )
    idempotency_key: str | None = Field(
        default=None,
        description="Client-chosen key: the same key never starts a second run.",
    )

    @field_validator("temp_id", mode="before")
    @classmethod
    def _check_temp_id(cls, value: object) -> str | int:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PydanticCustomError("temp_id", "must be a deployment name or a numeric alias")
        text = str(value).strip()
        if isinstance(value, int) and value < 0:
            raise PydanticCustomError("temp_id", "a numeric alias cannot be negative")
        if not NAME_RE.fullmatch(text):
            raise PydanticCustomError(
                "temp_id",
                "must be a deployment name (letters, digits, '.', '_', '-', one '/'; "
                "at most 64 per part) "
                "or a numeric alias",
            )
        return text

    @field_validator("args", mode="before")
    @classmethod
    def _parse_args(cls, value: object) -> Mapping_:
        parsed = _mapping_field(value, "args")
        for key in parsed:
            if not isinstance(key, str) or not key.isidentifier():
                raise PydanticCustomError(
                    "mapping", "parameter names must be identifiers such as TAG or git_url"
                )
        return parsed

    @field_validator("hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> Mapping_:
        parsed = _mapping_field(value, "hosts")
        for group, item in parsed.items():
            for host in item if isinstance(item, list) else [item]:
                if not isinstance(host, str) or not HOST_RE.fullmatch(host):
                    raise PydanticCustomError(
                        "host",
                        "group {group}: hosts are names or IP addresses "
                        "(letters, digits, '.', '-', ':')",
                        {"group": str(group)[:40]},
                    )
        return parsed

    @field_validator("submitter")
    @classmethod
    def _clean_submitter(cls, value: str | None) -> str | None:
        # informational (the token's user is the submitter), so cleaned rather than refused:
        # the older platform's scripts send display names
        return clean_name(value)

    @field_validator("associated_user", mode="before")
    @classmethod
    def _parse_users(cls, value: object) -> Mapping_:
        return _mapping_field(value, "associated_user")

    @field_validator("exec_time", mode="before")
    @classmethod
    def _parse_exec_time(cls, value: object) -> object:
        if value is None or isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise PydanticCustomError("exec_time", "must be a string")
        if not value.strip():
            return None
        try:
            return parse_exec_time(value)
        except ValueError as e:
            raise PydanticCustomError("exec_time", str(e)) from None

    @field_validator("idempotency_key", mode="before")
    @classmethod
    def _check_key(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str) or not IDEMPOTENCY_KEY_RE.fullmatch(value):
            raise PydanticCustomError(
                "idempotency_key", "8-200 characters: letters, digits, '.', '_', ':', '-'"
            )
        return value


@dataclass(frozen=True)
class ResolvedTemplate:
    """What a ``temp_id`` stands for.

    Attributes:
        template: the task template (for a deployment name or a deprecated alias, the
            implicit one: the older scripts' upper-case names mapped, others passed by name).
        label: how messages name it (``task template 1``, ``deployment git-deploy``).
        where: its key path in quayside.yaml, if it is configured there.
    """

    template: TaskTemplate
    label: str
    where: str | None = None


@dataclass(frozen=True)
class RunRequest:
    """What the gateway asks ``quayside.runs`` to start (``parameters`` are the task's raw
    ``args``: the template maps them)."""

    template: ResolvedTemplate
    parameters: dict[str, Value]
    hosts: list[str]
    require_approval: bool
    scheduled_at: datetime | None
    idempotency_key: str
    details: str = ""
    task_name: str = ""
    submitter: str | None = None
    notify: dict[str | int, Value] = field(default_factory=dict)

    @property
    def deployment(self) -> str:
        """The deployment the template starts."""
        return self.template.template.deployment


def resolve_template(
    temp_id: str | int,
    templates: Mapping[str, TaskTemplate],
    aliases: Mapping[str, str] | None = None,
) -> ResolvedTemplate:
    """What ``temp_id`` stands for: a task template, a (deprecated) alias, or a deployment.

    Args:
        temp_id: the submitted ``temp_id`` (already validated).
        templates: ``task_templates`` of the inventory.
        aliases: ``task_aliases`` of the inventory (deprecated: a template with only a
            deployment), e.g. ``{"7": "git-deploy"}``.

    Returns:
        The template and how to name it.

    Raises:
        NotFoundError: ``temp_id`` is a number no template (or alias) is configured for.
    """
    key = str(temp_id)
    if key in templates:
        return ResolvedTemplate(templates[key], f"task template {key}", f"task_templates.{key}")
    if aliases and key in aliases:
        return ResolvedTemplate(
            TaskTemplate.legacy(aliases[key]),
            f"task alias {key} ({aliases[key]})",
            f"task_aliases.{key}",
        )
    if key.isdigit():
        raise NotFoundError(
            f"temp_id: no task template {key!r} is configured",
            hint="add it under task_templates in quayside.yaml (see the README's task "
            "templates), or send a deployment name",
        )
    return ResolvedTemplate(TaskTemplate.legacy(key), f"deployment {key}")


def hosts_list(hosts: Mapping[str | int, Value]) -> list[str]:
    """Flatten ``{group: host | [hosts]}`` into a list, ordered by group, without duplicates.

    Args:
        hosts: the parsed ``hosts`` mapping (integer groups sort before named ones).

    Returns:
        Host names/addresses in group order, first occurrence kept.
    """
    ordered = sorted(
        hosts.items(), key=lambda kv: (0, kv[0], "") if isinstance(kv[0], int) else (1, 0, kv[0])
    )
    result: list[str] = []
    for _, item in ordered:
        for host in item if isinstance(item, list) else [item]:
            if isinstance(host, str) and host not in result:
                result.append(host)
    return result


def canonical_json(data: object) -> str:
    """Serialise ``data`` deterministically (sorted keys, no spaces, UTF-8 kept).

    Args:
        data: JSON-compatible data.

    Returns:
        The canonical JSON text.
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_request(
    sub: TaskSubmission,
    aliases: Mapping[str, str],
    tz: str | ZoneInfo = DEFAULT_TIMEZONE,
    *,
    templates: Mapping[str, TaskTemplate] | None = None,
    user: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    dedupe_window: timedelta = timedelta(minutes=10),
) -> RunRequest:
    """Turn a validated submission into a run request.

    The idempotency key is, in order of preference: ``idempotency_key`` (for example the
    ``Idempotency-Key`` header), the body's ``idempotency_key``, or ``sha256`` of the canonical
    JSON of what would run (temp_id, deployment, arguments, hosts, approval, schedule,
    submitter — not the free-text task_name/details/associated_user). For an unscheduled
    request, passing ``now`` adds the current ``dedupe_window`` bucket, so a retry within
    minutes is a duplicate while the same deploy requested again tomorrow is not. The gateway
    scopes the key by user, deployment, app and environment before Prefect sees it
    (:func:`quayside.triggers.idempotency.scoped_key`): another caller's key is never a match.

    Args:
        sub: the validated submission.
        aliases: numeric ``temp_id`` aliases to deployment names (deprecated).
        tz: the timezone of local ``exec_time`` strings (default ``Asia/Shanghai``).
        templates: the inventory's task templates (numeric ``temp_id``).
        user: the authenticated user; wins over the body's ``submitter``.
        idempotency_key: a key the client sent out of band (header).
        now: the current time (aware), only used for the dedupe bucket.
        dedupe_window: the bucket size for unscheduled requests.

    Returns:
        The :class:`RunRequest`.

    Raises:
        NotFoundError: a numeric ``temp_id`` has no template (or alias).
        InputError: unknown timezone, a local ``exec_time`` that does not exist there, or an
            invalid header idempotency key.
    """
    resolved = resolve_template(sub.temp_id, templates or {}, aliases)
    deployment = resolved.template.deployment
    scheduled_at = to_utc(sub.exec_time, tz) if sub.exec_time is not None else None
    submitter = user or sub.submitter
    hosts = hosts_list(sub.hosts)
    parameters: dict[str, Value] = dict(sub.args)
    require_approval = sub.schedule == "new"
    key = idempotency_key or sub.idempotency_key
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
        raise InputError("Idempotency-Key: 8-200 characters: letters, digits, '.', '_', ':', '-'")
    if key is None:
        identity: dict[str, Any] = {
            "temp_id": str(sub.temp_id),
            "deployment": deployment,
            "parameters": parameters,
            "hosts": hosts,
            "require_approval": require_approval,
            "scheduled_at": scheduled_at.isoformat() if scheduled_at else None,
            "submitter": submitter,
        }
        if scheduled_at is None and now is not None:
            window = max(int(dedupe_window.total_seconds()), 1)
            identity["bucket"] = int(now.timestamp()) // window
        key = "task:" + hashlib.sha256(canonical_json(identity).encode()).hexdigest()
    return RunRequest(
        template=resolved,
        parameters=parameters,
        hosts=hosts,
        require_approval=require_approval,
        scheduled_at=scheduled_at,
        idempotency_key=key,
        details=sub.details,
        task_name=sub.task_name,
        submitter=submitter,
        notify=dict(sub.associated_user),
    )


def format_validation_error(err: ValidationError) -> list[str]:
    """Render a pydantic error as ``field.path: message`` lines for a 4xx response.

    Args:
        err: the error raised by ``TaskSubmission.model_validate``.

    Returns:
        One line per problem; input values are never echoed.
    """
    lines: list[str] = []
    accepted = ", ".join(TaskSubmission.model_fields)
    for item in err.errors(include_url=False, include_input=False):
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        if item["type"] == "extra_forbidden":
            message = f"unknown field; accepted fields are: {accepted}"
        elif item["type"] == "missing":
            message = "required field is missing"
        else:
            message = item["msg"]
        lines.append(f"{path or '(body)'}: {message}")
    return lines


def parse_submission(data: object) -> TaskSubmission:
    """Validate a decoded JSON body as a :class:`TaskSubmission`.

    Args:
        data: the decoded request body.

    Returns:
        The validated submission.

    Raises:
        InputError: the body is not a JSON object or fails validation; the message has one
            ``field.path: message`` line per problem.
    """
    if not isinstance(data, Mapping):
        raise InputError("the request body must be a JSON object")
    try:
        return TaskSubmission.model_validate(data)
    except ValidationError as e:
        raise InputError("\n".join(format_validation_error(e))) from None


__all__ = [
    "DEFAULT_TIMEZONE",
    "ResolvedTemplate",
    "RunRequest",
    "Scalar",
    "TaskSubmission",
    "canonical_json",
    "format_validation_error",
    "hosts_list",
    "parse_exec_time",
    "parse_submission",
    "resolve_template",
    "to_request",
    "to_utc",
]
