"""The config center's web pages (issue 17): a tree of items, an editor, the history, a
side-by-side diff, restore, and a Publish button that starts the publish flow.

Server-rendered HTML (Jinja2, autoescape; no script), behind a login
(:mod:`quayside.gateway.routes_config_login`). Every page checks the user's role with
:mod:`quayside.config.permissions`: REPORTER+ reads, DEVELOPER+ edits. A REPORTER's pages
have no edit forms, and every POST checks the session, then its CSRF token, then the role
(403) before anything is saved. Addresses are parsed by :class:`ItemAddress` (traversal and
odd filenames are refused with the core's message). A save names the version the editor was
opened on: a stale one is answered 409 with both versions side by side and the refused text
kept in an editor, so nothing is lost.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from quayside.config import items
from quayside.config.address import ItemAddress, check_name
from quayside.config.backend import open_store
from quayside.config.errors import StaleSave
from quayside.config.store import ConfigStore
from quayside.errors import InputError
from quayside.gateway.context import GatewayContext
from quayside.gateway.run_starts import RETRY_AFTER_S, slots_of
from quayside.gateway.web_access import (
    PREFIX,
    PageCaller,
    PageRoute,
    gateway_context,
    page_session,
)
from quayside.gateway.web_csrf import FIELD, check_token
from quayside.gateway.web_diff import side_by_side
from quayside.gateway.web_forms import Form, read_form
from quayside.gateway.web_pages import SECURITY_HEADERS, render
from quayside.gateway.web_projects import readable_projects, require_editor, require_reader
from quayside.gateway.web_publish import (
    decode_versions,
    encode_versions,
    plan_publish,
    publishable_services,
)

router = APIRouter(tags=["config pages"], route_class=PageRoute, include_in_schema=False)
Caller = Depends(page_session)

#: what to do when the publish waited too long for its turn (the form publishes once)
PUBLISH_BUSY_HINT = (
    f"go back and press Publish again in {RETRY_AFTER_S} s: the same form publishes once"
)


def _store(ctx: GatewayContext) -> ConfigStore:
    return open_store(ctx.engine())


def _page(caller: PageCaller, name: str, status: int = 200, **values: Any) -> Response:
    return render(name, status_code=status, user=caller.user, csrf=caller.csrf, **values)


def _query_version(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise InputError(f"{name}: expected a version number, got {raw[:20]!r}")
    return int(raw)


def _item_url(address: ItemAddress, **query: int) -> str:
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{PREFIX}/items/{address}" + (f"?{tail}" if tail else "")


async def _posted(request: Request, caller: PageCaller) -> Form:
    """The form of a POST whose session was checked, after its CSRF token is."""
    form = await read_form(request)
    check_token(request, caller.csrf, form.text(FIELD))
    return form


# --- static ------------------------------------------------------------------------------


@router.get(f"{PREFIX}/static/style.css")
def stylesheet() -> Response:
    """The pages' only stylesheet."""
    css = resources.files("quayside.gateway").joinpath("templates/config/style.css").read_text()
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"}
    return Response(css, media_type="text/css", headers=headers)


# --- the tree ----------------------------------------------------------------------------


def _tree(ctx: GatewayContext, user: str) -> list[dict[str, Any]]:
    store = _store(ctx)
    projects = []
    for access in readable_projects(ctx, user):
        by_env: dict[str, dict[str, list[items.ItemState]]] = defaultdict(lambda: defaultdict(list))
        for state in items.states(store, access.name):
            address = state.latest.address
            by_env[address.environment][address.service].append(state)
        envs = []
        for env in sorted(set(access.environments) | set(by_env)):
            publishable = publishable_services(ctx, access.name, env)
            services = [
                {
                    "name": service,
                    "states": states,
                    "unpublished": sum(s.unpublished for s in states),
                    "publishable": service in publishable,
                    "versions": encode_versions(
                        {s.latest.address.filename: s.latest.version for s in states}
                    ),
                    "publish_key": secrets.token_urlsafe(24),
                }
                for service, states in sorted(by_env.get(env, {}).items())
            ]
            envs.append({"name": env, "services": services})
        projects.append({"name": access.name, "can_edit": access.can_edit, "environments": envs})
    return projects


@router.get(f"{PREFIX}")
@router.get(f"{PREFIX}/")
async def tree(request: Request, caller: PageCaller = Caller) -> Response:
    """Every config item the user may read, by project / environment / service."""
    projects = await run_in_threadpool(_tree, gateway_context(request), caller.user)
    return _page(caller, "tree.html", title="Config items", projects=projects)


# --- one item: view and save -------------------------------------------------------------


def _item_values(
    ctx: GatewayContext, user: str, address: ItemAddress, version: int | None
) -> dict[str, Any]:
    can_edit = require_reader(ctx, user, address.project, address.environment)
    store = _store(ctx)
    shown = items.get(store, address, version)
    latest = items.latest_version_number(store, address)
    return {
        "address": address,
        "shown": shown,
        "latest": latest,
        "published": store.published_marker(address),
        "can_edit": can_edit,
        "base_version": latest,
        "content": shown.content,
        "template": shown.template,
        "message": "",
    }


@router.get(PREFIX + "/items/{address:path}")
async def item_page(request: Request, address: str, caller: PageCaller = Caller) -> Response:
    """One item: its latest draft in an editor (or read only), or an older version."""
    item = ItemAddress.parse(address)
    version = _query_version(request, "version")
    saved = _query_version(request, "saved")
    values = await run_in_threadpool(
        _item_values, gateway_context(request), caller.user, item, version
    )
    return _page(caller, "item.html", title=str(item), saved=saved, error=None, hint=None, **values)


def _stale_values(
    ctx: GatewayContext, address: ItemAddress, error: StaleSave, attempted: str
) -> dict[str, Any]:
    current = items.get(_store(ctx), address, error.current_version)
    return {
        "address": address,
        "message": error.message.split("\n", 1)[0],  # the diff is shown side by side
        "hint": f"nothing was lost: your text is below; merge it with version "
        f"{error.current_version} and save again",
        "current": current,
        "attempted": attempted,
        "rows": side_by_side(current.content, attempted),
        "left_title": f"v{current.version} (latest, by {current.author})",
        "right_title": "your refused save",
        "can_edit": True,
    }


def _save(
    ctx: GatewayContext, user: str, address: ItemAddress, form: Form
) -> tuple[int, dict[str, Any] | None]:
    """Save the form; ``(new version, None)``, or ``(0, stale page values)``."""
    require_editor(ctx, user, address.project, address.environment)
    content = form.text("content")
    try:
        saved = items.save(
            _store(ctx),
            address,
            content,
            author=user,
            base_version=form.number("base_version", label="base version"),
            message=form.text("message"),
            template=form.flag("template"),
        )
    except StaleSave as e:
        return 0, _stale_values(ctx, address, e, content)
    return saved.version, None


@router.post(PREFIX + "/items/{address:path}")
async def save_item(request: Request, address: str, caller: PageCaller = Caller) -> Response:
    """Save the editor's text as the next draft, starting from the version it showed."""
    form = await _posted(request, caller)
    item = ItemAddress.parse(address)
    ctx = gateway_context(request)
    try:
        version, stale = await run_in_threadpool(_save, ctx, caller.user, item, form)
    except InputError as e:  # too large, a bad message: the text stays in the editor
        values = await run_in_threadpool(_item_values, ctx, caller.user, item, None)
        values.update(
            content=form.text("content"),
            template=form.flag("template"),
            message=form.text("message"),
        )
        values["base_version"] = form.text("base_version")
        return _page(
            caller, "item.html", 400, title=str(item), saved=None, error=e.message, hint=e.hint,
            **values,
        )  # fmt: skip
    if stale is not None:
        return _page(
            caller,
            "stale.html",
            409,
            title="Not saved",
            retry_action=_item_url(item),
            retry_version=None,
            retry_fields=False,
            template=form.flag("template"),
            message_text=form.text("message"),
            **stale,
        )
    return RedirectResponse(_item_url(item, saved=version), status_code=303)


# --- new item ----------------------------------------------------------------------------


def _check_env(ctx: GatewayContext, user: str, project: str, environment: str) -> None:
    check_name("project", project)
    check_name("environment", environment)
    require_editor(ctx, user, project, environment)


def _new_values(form: Form | None = None) -> dict[str, Any]:
    form = form or Form({})
    return {
        "service": form.text("service"),
        "filename": form.text("filename"),
        "content": form.text("content"),
        "template": form.flag("template"),
        "message": form.text("message"),
    }


@router.get(PREFIX + "/new/{project}/{environment}")
async def new_item_page(
    request: Request, project: str, environment: str, caller: PageCaller = Caller
) -> Response:
    """The form for a new file in ``project``/``environment`` (editors only)."""
    await run_in_threadpool(_check_env, gateway_context(request), caller.user, project, environment)
    return _page(
        caller, "new.html", title="New file", project=project, environment=environment,
        error=None, hint=None, **_new_values(),
    )  # fmt: skip


def _create(
    ctx: GatewayContext, user: str, project: str, environment: str, form: Form
) -> tuple[ItemAddress, int, dict[str, Any] | None]:
    _check_env(ctx, user, project, environment)
    address = ItemAddress(project, environment, form.text("service"), form.text("filename"))
    content = form.text("content")
    base = form.number("base_version") if form.text("base_version") else 0
    try:
        saved = items.save(
            _store(ctx),
            address,
            content,
            author=user,
            base_version=base,
            message=form.text("message"),
            template=form.flag("template"),
        )
    except StaleSave as e:
        return address, 0, _stale_values(ctx, address, e, content)
    return address, saved.version, None


@router.post(PREFIX + "/new/{project}/{environment}")
async def create_item(
    request: Request, project: str, environment: str, caller: PageCaller = Caller
) -> Response:
    """Create the file (version 1); a bad service or filename is shown with the form kept."""
    form = await _posted(request, caller)
    ctx = gateway_context(request)
    try:
        address, version, stale = await run_in_threadpool(
            _create, ctx, caller.user, project, environment, form
        )
    except InputError as e:
        return _page(
            caller, "new.html", 400, title="New file", project=project, environment=environment,
            error=e.message, hint=e.hint, **_new_values(form),
        )  # fmt: skip
    if stale is not None:
        return _page(
            caller,
            "stale.html",
            409,
            title="Not saved",
            retry_action=f"{PREFIX}/new/{project}/{environment}",
            retry_version=None,
            retry_fields=True,
            template=form.flag("template"),
            message_text=form.text("message"),
            **stale,
        )
    return RedirectResponse(_item_url(address, saved=version), status_code=303)


# --- history, diff, restore --------------------------------------------------------------


def _history_values(ctx: GatewayContext, user: str, address: ItemAddress) -> dict[str, Any]:
    can_edit = require_reader(ctx, user, address.project, address.environment)
    store = _store(ctx)
    versions = items.history(store, address)
    if not versions:
        items.get(store, address)  # raises VersionNotFound, naming the item
    latest = versions[-1].version
    marker = store.published_marker(address)
    if marker is not None and marker.version != latest:
        default_before = marker.version
    else:
        default_before = versions[-2].version if len(versions) > 1 else latest
    return {
        "address": address,
        "versions": list(reversed(versions)),
        "latest": latest,
        "published": marker,
        "default_before": default_before,
        "can_edit": can_edit,
    }


@router.get(PREFIX + "/history/{address:path}")
async def history_page(request: Request, address: str, caller: PageCaller = Caller) -> Response:
    """Every version of an item, newest first, with compare and restore."""
    item = ItemAddress.parse(address)
    values = await run_in_threadpool(_history_values, gateway_context(request), caller.user, item)
    return _page(caller, "history.html", title=f"History of {item}", **values)


def _diff_values(
    ctx: GatewayContext, user: str, address: ItemAddress, before: int, after: int
) -> dict[str, Any]:
    require_reader(ctx, user, address.project, address.environment)
    store = _store(ctx)
    a, b = items.get(store, address, before), items.get(store, address, after)
    return {
        "address": address,
        "before": a,
        "after": b,
        "rows": side_by_side(a.content, b.content),
        "left_title": f"v{a.version} by {a.author}",
        "right_title": f"v{b.version} by {b.author}",
    }


@router.get(PREFIX + "/diff/{address:path}")
async def diff_page(request: Request, address: str, caller: PageCaller = Caller) -> Response:
    """Two versions side by side (``?before=N&after=M``)."""
    item = ItemAddress.parse(address)
    before, after = _query_version(request, "before"), _query_version(request, "after")
    if before is None or after is None:
        raise InputError("before and after: give the two version numbers to compare")
    values = await run_in_threadpool(
        _diff_values, gateway_context(request), caller.user, item, before, after
    )
    return _page(caller, "diff.html", title=f"{item} v{before} → v{after}", **values)


def _restore(
    ctx: GatewayContext, user: str, address: ItemAddress, form: Form
) -> tuple[int, dict[str, Any] | None]:
    require_editor(ctx, user, address.project, address.environment)
    version = form.number("version")
    store = _store(ctx)
    try:
        restored = items.restore(
            store,
            address,
            version,
            author=user,
            base_version=form.number("base_version", label="base version"),
            message=form.text("message"),
        )
    except StaleSave as e:
        return 0, _stale_values(ctx, address, e, items.get(store, address, version).content)
    return restored.version, None


@router.post(PREFIX + "/restore/{address:path}")
async def restore_item(request: Request, address: str, caller: PageCaller = Caller) -> Response:
    """Save an old version's content as a new draft (history is kept)."""
    form = await _posted(request, caller)
    item = ItemAddress.parse(address)
    version, stale = await run_in_threadpool(
        _restore, gateway_context(request), caller.user, item, form
    )
    if stale is not None:
        return _page(
            caller,
            "stale.html",
            409,
            title="Not restored",
            retry_action=f"{PREFIX}/restore/{item}",
            retry_version=form.number("version"),
            retry_fields=False,
            template=False,
            message_text=form.text("message"),
            **stale,
        )
    return RedirectResponse(_item_url(item, saved=version), status_code=303)


# --- publish -----------------------------------------------------------------------------


@router.post(PREFIX + "/publish/{project}/{environment}/{service}")
async def publish(
    request: Request, project: str, environment: str, service: str, caller: PageCaller = Caller
) -> Response:
    """Start the publish flow for ``service`` of ``project``/``environment`` with the versions
    the page showed, and link to its run."""
    form = await _posted(request, caller)
    check_name("project", project)
    check_name("environment", environment)
    check_name("service", service)
    versions = decode_versions(form.text("versions"))
    start = await run_in_threadpool(
        plan_publish,
        gateway_context(request),
        caller.user,
        project,
        environment,
        service,
        versions,
        form.text("publish_key"),
    )  # every refusal answered here, without a turn
    async with slots_of(request).slot(hint=PUBLISH_BUSY_HINT):
        handle = await run_in_threadpool(start)
    return _page(
        caller,
        "published.html",
        202 if handle.created else 200,
        title=f"Publish {project}/{environment}/{service}",
        project=project,
        environment=environment,
        service=service,
        versions=sorted(versions.items()),
        status_word="started" if handle.created else f"already started ({handle.state_name})",
        ui_url=handle.ui_url,
        run_name=handle.name,
        run_id=handle.id,
    )
