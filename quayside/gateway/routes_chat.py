"""``POST /chatops/dingtalk``: DingTalk outgoing-robot callbacks.

The callback is verified (timestamp + HMAC-SHA256 sign, one-hour window, each signature and each
msgId once across every gateway process: :mod:`quayside.triggers.replay`), the text parsed
into a command, the sender (``senderStaffId``) mapped to a Quayside user whose role is checked,
and the command carried out through ``quayside.runs``. The reply is POSTed to
the callback's ``sessionWebhook`` and also returned as the HTTP response (DingTalk shows a
synchronous reply too). Nothing runs for a message that does not parse: the reply is the help.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Header, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from quayside.auth.policy import RunKind
from quayside.errors import ConfigError, InputError, NotFoundError, QuaysideError
from quayside.gateway.auth import require, service
from quayside.gateway.config import origin_of
from quayside.gateway.context import GatewayContext, context
from quayside.gateway.default_ref import ChosenRef, default_ref
from quayside.gateway.errors import ServiceUnavailable
from quayside.gateway.routes_approvals import answer
from quayside.gateway.run_starts import RETRY_AFTER_S, RunStartsBusy, slots_of
from quayside.gateway.submitting import submission_scope, submit_run
from quayside.gateway.triggering import (
    catalogue_entry,
    env_requires_approval,
    get_app,
    start_status,
)
from quayside.notify.dingtalk_signing import check_send_response
from quayside.notify.errors import SendError
from quayside.triggers.chat import (
    HELP_TEXT,
    Approve,
    Command,
    Deploy,
    Help,
    Rollback,
    Status,
    parse_command,
)
from quayside.triggers.dingtalk import OutgoingMessage, reply_payload, verify_signature
from quayside.triggers.errors import ParseError

log = logging.getLogger("quayside.gateway")
router = APIRouter(tags=["chatops"])
CtxDep = Annotated[GatewayContext, Depends(context)]
PROVIDER = "dingtalk"
#: the reply to a deploy or rollback that waited too long for its turn (nothing was started)
BUSY_TEXT = (
    "Quayside 正忙, 未启动 / Quayside is busy starting other runs and started nothing for "
    f"this one: send the command again in {RETRY_AFTER_S} s"
)


def app_secret(ctx: GatewayContext) -> str:
    """The robot's appSecret: QUAYSIDE_DINGTALK_APP_SECRET, else inventory secret
    ``dingtalk_app_secret``.

    Raises:
        ServiceUnavailable: neither is configured.
    """
    if ctx.config.dingtalk_app_secret:
        return ctx.config.dingtalk_app_secret
    ref = ctx.inventory().secrets.get("dingtalk_app_secret")
    if ref is not None:
        from quayside.runs.secrets import resolve_secret

        try:
            return resolve_secret(ref, name="secrets.dingtalk_app_secret")
        except ConfigError as e:
            log.warning("dingtalk: %s", e.message)
    raise ServiceUnavailable(
        "the DingTalk robot is not configured",
        hint="set QUAYSIDE_DINGTALK_APP_SECRET or secrets.dingtalk_app_secret in quayside.yaml",
    )


def reply_url(ctx: GatewayContext, message: OutgoingMessage, now_ms: int) -> str | None:
    """Where to POST the reply: the sessionWebhook if it is on a DingTalk host (or an origin
    allowed by QUAYSIDE_DINGTALK_REPLY_HOSTS) and not expired; else ``None``."""
    try:
        return message.reply_url(now_ms)
    except InputError as e:
        url = message.session_webhook
        expired = (
            message.session_webhook_expired_time is not None
            and message.session_webhook_expired_time <= now_ms
        )
        if url and not expired and origin_of(url) in ctx.config.dingtalk_reply_origins:
            return url
        log.warning("dingtalk: not replying through the session webhook: %s", e.message)
        return None


@router.post("/chatops/dingtalk", summary="DingTalk outgoing robot callback")
async def dingtalk(
    request: Request,
    ctx: CtxDep,
    timestamp: Annotated[str | None, Header(max_length=32)] = None,
    sign: Annotated[str | None, Header(max_length=128)] = None,
) -> dict[str, Any]:
    """Verify, parse and carry out a chat command; the reply is the response body."""
    now_ms = ctx.clock_ms()
    secret = await run_in_threadpool(app_secret, ctx)
    verify_signature(secret, timestamp, sign, now_ms)
    assert timestamp is not None and sign is not None
    raw = await request.body()
    try:
        message = OutgoingMessage.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise InputError("the body is not a DingTalk callback message") from None
    # once per signature and per msgId, across every gateway sharing the ledger: the signature
    # does not cover the body, so a replayed one could carry another sender or command
    await run_in_threadpool(ctx.replay_guard.check, timestamp, sign, message.msg_id, now_ms)
    planned = await run_in_threadpool(_plan_reply, ctx, message)
    if isinstance(planned, str):  # help, status, approvals, every refusal: no turn needed
        text = planned
    else:  # a deploy or rollback, checked: it starts in its turn
        try:
            async with slots_of(request).slot():
                text = await run_in_threadpool(planned)
        except RunStartsBusy:
            text = BUSY_TEXT
    at = [message.sender_staff_id] if message.sender_staff_id else []
    payload = reply_payload(text, at)
    url = reply_url(ctx, message, now_ms)
    if url is not None:
        await _send(url, payload)
    return payload


async def _send(url: str, payload: dict[str, Any]) -> None:
    try:
        async with httpx.AsyncClient(timeout=5, follow_redirects=False, trust_env=False) as client:
            response = await client.post(url, json=payload)
        check_send_response(response.json())
    except (httpx.HTTPError, ValueError, SendError) as e:
        log.warning("dingtalk: reply not delivered: %s", type(e).__name__)


def _plan_reply(ctx: GatewayContext, message: OutgoingMessage) -> str | Callable[[], str]:
    """The reply to ``message``, or - for a deploy or rollback that passed every check - the
    start that replies once it has started the run (it waits for a run-start slot; help,
    status, approvals and refusals never wait behind run starts)."""
    content = message.content
    if content is None:
        return HELP_TEXT
    try:
        command = parse_command(content, ctx.config.dingtalk_robot_name)
    except ParseError as e:
        return f"{e.message}\n\n{e.help_text}"
    if isinstance(command, Help):
        return HELP_TEXT
    staff_id = message.sender_staff_id
    if not staff_id:
        return "无法识别发送者 / cannot tell who sent this message"
    user = service().user_by_chat_id(ctx.engine(), PROVIDER, staff_id)
    if user is None:
        return (
            "你的钉钉账号未绑定 Quayside 用户 / your DingTalk account is not linked to a "
            "Quayside user; ask an admin to link it"
        )
    try:
        planned = _carry_out(ctx, user, command, message)
    except QuaysideError as e:
        return _failure_text(user, e)
    if isinstance(planned, str):
        return planned

    def start() -> str:
        try:
            return planned()
        except QuaysideError as e:
            return _failure_text(user, e)

    return start


def _failure_text(user: str, e: QuaysideError) -> str:
    kind = type(e).__name__
    if kind == "PermissionDenied":
        return f"权限不足 / permission denied: {e.message}"
    log.info("dingtalk command from %s failed: %s: %s", user, kind, e.message)
    return f"失败 / failed: {e.message}"


def _carry_out(
    ctx: GatewayContext, user: str, command: Command, message: OutgoingMessage
) -> str | Callable[[], str]:
    """Carry out ``command``; a deploy or rollback is checked here and returned as its start."""
    inventory = ctx.inventory()
    key_base = f"chat:{PROVIDER}:{message.msg_id}" if message.msg_id else None
    if isinstance(command, Deploy | Rollback):
        app = get_app(inventory, command.app)
        if command.env not in app.environments:
            raise NotFoundError(f"app {command.app} has no environment {command.env!r}")
        from quayside.ledger.environments import auto_triggers_paused

        # a chat deploy is an automatic trigger; a rollback is not (after one rollback,
        # rolling further back must stay possible)
        paused = auto_triggers_paused(ctx.engine(), command.app, command.env)
        if paused is not None and isinstance(command, Deploy):
            return f"未执行 / not started: {paused}"
        if isinstance(command, Deploy):
            name = ctx.config.git_deploy_deployment
            wanted: dict[str, Any] = {"app": command.app, "env": command.env}
            if command.ref:
                wanted["ref"] = command.ref
            verb = "发布 / deploy"
        else:
            # the right to roll back is checked before anything of the app's releases is read
            # (the reply to a refusal must not describe them)
            rollback_spec = catalogue_entry(ctx.config.rollback_deployment)
            submission_scope(ctx, user, rollback_spec, {"app": command.app, "env": command.env})
            name, wanted = _rollback(ctx, user, command)
            verb = "回滚 / rollback"
        spec = catalogue_entry(name)
        if not spec.triggerable:  # the same rule as the task API: chat is a trigger
            return (
                f"未执行 / not started: {spec.name} cannot be started from chat; "
                "use `quayside` on the platform host or the Prefect UI"
            )
        scope = submission_scope(ctx, user, spec, wanted)
        chosen: ChosenRef | None = None
        if isinstance(command, Deploy) and not command.ref:
            chosen = default_ref(ctx, command.app, command.env)
            if chosen is not None:
                wanted["ref"] = chosen.ref
        kind: RunKind = "deploy" if isinstance(command, Deploy) else "rollback"
        approval = env_requires_approval(inventory, command.app, command.env, kind=kind)
        wanted.update({"requested_by": user, "approval": approval})
        names = ctx.deployment_parameters(spec.full_name)
        missing = sorted(ctx.required_parameters(spec.full_name) - set(wanted))
        if missing:
            return (
                f"缺少参数 / missing: {', '.join(missing)}; "
                f"e.g. deploy {command.app} to {command.env} <tag>, or set default_ref of "
                f"apps.{command.app}.environments.{command.env} in quayside.yaml"
            )

        def start() -> str:
            handle = submit_run(
                ctx,
                user,
                spec,
                scope,
                {k: v for k, v in wanted.items() if k in names},
                via="dingtalk",
                idempotency_key=f"{key_base}:{spec.name}" if key_base else _fresh_key(),
                tags=[f"app:{command.app}", f"env:{command.env}", "trigger:dingtalk"],
            )
            what = f"{verb} {command.app} → {command.env}"
            if chosen is not None:
                what += f" @ {chosen.ref} ({chosen.why})"
            elif isinstance(command, Deploy) and command.ref:
                what += f" @ {command.ref}"
            status, _ = start_status(handle)
            if status == "already_ran":
                return f"{what}\n已执行过 / already ran: {handle.ui_url} ({handle.state_name})"
            if status == "already_running":
                return f"{what}\n已在运行 / already running: {handle.ui_url} ({handle.state_name})"
            return f"{what}\n已开始 / started: {handle.ui_url}"

        return start
    if isinstance(command, Approve):
        decision = "reject" if command.reject else "approve"  # the signed sender, no token
        result = answer(ctx, command.run_id, user, decision, command.comment, token=None)
        return f"{decision} {result.flow_run_id}: {result.detail} ({result.status})"
    assert isinstance(command, Status)
    app = get_app(inventory, command.app)
    require(ctx, user, app.space, command.app, "REPORTER")
    return _status_text(
        ctx, command.app, [command.env] if command.env else sorted(app.environments)
    )


def _rollback(ctx: GatewayContext, user: str, command: Rollback) -> tuple[str, dict[str, Any]]:
    """The deployment and parameters that roll ``command``'s app/env back, by the kind of what
    it serves (:mod:`quayside.release.rollback_kind`, as ``quayside rollback``): the code's
    rollback, a config-publish of earlier versions, or an image release of the earlier digest.

    Raises:
        InputError: a kind with no rollback (hello, plugin), or a ``to`` that does not fit.
        NotFoundError: nothing earlier to go back to.
    """
    from quayside.release.rollback_kind import rollback_run

    run = rollback_run(
        ctx.engine(), command.app, command.env, to=command.to, kind=None, requested_by=user
    )
    wanted = {k: v for k, v in run.parameters.items() if k != "requested_by"}
    if run.kind == "git":  # the code's rollback deployment may be renamed for the gateway
        return ctx.config.rollback_deployment, wanted
    return run.deployment, wanted


def _fresh_key() -> str:
    import uuid

    return f"chat:{PROVIDER}:{uuid.uuid4().hex}"


def _status_text(ctx: GatewayContext, app: str, envs: list[str]) -> str:
    from quayside.ledger.release_queries import list_releases

    lines = [f"{app} 最近发布 / latest releases:"]
    for env in envs:
        releases = list_releases(ctx.engine(), app, env, limit=3)
        if not releases:
            lines.append(f"  {env}: (none)")
        for release in releases:
            when = release.finished_at or release.started_at or release.created_at
            lines.append(
                f"  {env}: #{release.id} {release.version or release.ref or '-'} "
                f"{release.status} {when:%Y-%m-%d %H:%M} UTC by {release.requested_by or '-'}"
            )
    return "\n".join(lines)
