"""``quayside config`` and ``quayside vars``: the config center from the command line.

Who acts: with a token (``--token-file`` or ``QUAYSIDE_TOKEN``) the token's user, whose role on
the project is checked (DEVELOPER+ edits, REPORTER+ reads); without one, the platform operator
at a shell on the platform host (``cli:<login>``), like the other operator commands. The store
is the ledger unless ``QUAYSIDE_CONFIG_BACKEND=vault`` (see :mod:`quayside.config.backend`).

``config get`` and ``config diff`` print the file or the diff alone on stdout (pipe them);
everything else goes to stderr. A secret never goes on the command line: ``vars set --secret``
asks for it (hidden) or reads ``--from-file``. ``config publish`` (starting the publish flow)
is in :mod:`quayside.cli.commands_config_publish`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quayside.cli.app import app, console, err_console
from quayside.errors import InputError
from quayside.settings import load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from quayside.config.store import ConfigStore
    from quayside.inventory import Inventory

config_app = typer.Typer(
    help="The config center: versioned config files (drafts, history, diff, restore).",
    no_args_is_help=True,
)
vars_app = typer.Typer(
    help="Variables per project/environment, used by config templates (secrets masked).",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(vars_app, name="vars")

TOKEN_HELP = (
    "file holding your token, readable by you only (default: QUAYSIDE_TOKEN; without either "
    "you act as the platform operator)"
)
TokenFile = typer.Option(None, "--token-file", help=TOKEN_HELP)


@dataclass
class Center:
    """What one command works with."""

    engine: Engine
    store: ConfigStore
    inventory: Inventory
    user: str
    operator: bool

    def require(self, project: str, environment: str, *, edit: bool) -> None:
        """Check the user's role (the operator is not checked: they hold the ledger)."""
        from quayside.config.permissions import check_environment, require_editor, require_reader

        if self.operator:
            check_environment(self.inventory, project, environment)
            return
        check = require_editor if edit else require_reader
        check(self.engine, self.inventory, self.user, project, environment)

    def require_project(self, project: str) -> None:
        """Check that the user may read the project's config (any environment)."""
        from quayside.config.permissions import require_reader

        if not self.operator:
            require_reader(self.engine, self.inventory, self.user, project)


@contextmanager
def _center(token_file: Path | None) -> Iterator[Center]:
    from quayside.cli.requester import given_token, operator_name
    from quayside.config.backend import open_store
    from quayside.inventory import Inventory, load_inventory
    from quayside.ledger.db import check_schema, make_engine

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
        token = given_token(token_file, os.environ)
        if token is None:
            user, operator = operator_name(), True
        else:
            from quayside.auth.service import authenticate

            user, operator = authenticate(engine, token).name, False
        path = settings.inventory_path
        inventory = load_inventory(path) if path.exists() else Inventory()
        yield Center(engine, open_store(engine), inventory, user, operator)
    finally:
        engine.dispose()


def _box() -> Any:
    from quayside.config.secret_box import SecretBox

    return SecretBox.from_home(load_settings().home)


def _reader() -> Any:
    from quayside.config.backend import open_reader

    return open_reader()


def _read_input(file: Path | None) -> str:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"--file {file}: cannot read it as UTF-8 text ({e})") from e
    if sys.stdin.isatty():
        raise InputError("give the content with --file PATH or on stdin")
    return sys.stdin.read()


def _base(text: str | None, latest: int) -> int:
    """``--base``: a version number, ``latest``, or (not given) 0 for a new item."""
    if text is None:
        if latest:
            raise InputError(
                f"it has version {latest} already: name the version your change starts from "
                f"with --base {latest} (or --base latest to overwrite whatever is there)"
            )
        return 0
    if text == "latest":
        return latest
    if not text.isdigit():
        raise InputError(f"--base: '{text}' is not a version number or 'latest'")
    return int(text)


def _say(text: str) -> None:
    err_console.print(text, highlight=False, markup=False)


# config ------------------------------------------------------------------------------------


@config_app.command("set")
def config_set(
    address: str = typer.Argument(..., help="PROJECT/ENV/SERVICE/FILENAME"),
    file: Path | None = typer.Option(None, "--file", "-f", help="content (default: stdin)"),
    base: str | None = typer.Option(
        None, "--base", help="the version your change starts from (or 'latest')"
    ),
    message: str = typer.Option("", "--message", "-m", help="why"),
    template: bool = typer.Option(
        False, "--template", help="a Jinja2 template rendered with the environment's variables"
    ),
    token_file: Path | None = TokenFile,
) -> None:
    """Save a new draft of a config file."""
    from quayside.config import items
    from quayside.config.address import ItemAddress

    item = ItemAddress.parse(address)
    content = items.check_content(_read_input(file))
    with _center(token_file) as center:
        center.require(item.project, item.environment, edit=True)
        start = _base(base, items.latest_version_number(center.store, item))
        saved = items.save(
            center.store,
            item,
            content,
            author=center.user,
            base_version=start,
            message=message,
            template=template,
        )
    _say(f"{item}: saved version {saved.version} (draft; sha256 {saved.content_hash[:12]})")


@config_app.command("edit")
def config_edit(
    address: str = typer.Argument(..., help="PROJECT/ENV/SERVICE/FILENAME"),
    message: str = typer.Option("", "--message", "-m", help="why"),
    template: bool | None = typer.Option(
        None, "--template/--no-template", help="change whether it is a template"
    ),
    token_file: Path | None = TokenFile,
) -> None:
    """Edit the latest draft in $VISUAL / $EDITOR and save it as a new version. A stale save
    (someone saved meanwhile) is refused and your edit is kept in a file it names."""
    import shlex
    import subprocess
    import tempfile

    from quayside.config import items
    from quayside.config.address import ItemAddress
    from quayside.config.errors import StaleSave, VersionNotFound

    item = ItemAddress.parse(address)
    with _center(token_file) as center:
        center.require(item.project, item.environment, edit=True)
        try:
            latest = items.get(center.store, item)
            start, before, was_template = latest.version, latest.content, latest.template
        except VersionNotFound:
            start, before, was_template = 0, "", False
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    suffix = "-" + item.filename.replace("/", "_")
    fd, name = tempfile.mkstemp(prefix=f"quayside-v{start}-", suffix=suffix)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(before)
    done = subprocess.run([*editor, name], check=False)  # argv, never a shell string
    if done.returncode != 0:
        raise InputError(f"the editor exited {done.returncode}; your edit is kept in {name}")
    after = Path(name).read_text(encoding="utf-8")
    keep_template = was_template if template is None else template
    if after == before and keep_template == was_template:
        os.unlink(name)
        _say(f"{item}: no change")
        return
    with _center(token_file) as center:
        try:
            saved = items.save(
                center.store,
                item,
                after,
                author=center.user,
                base_version=start,
                message=message,
                template=keep_template,
            )
        except StaleSave as e:
            e.hint = f"{e.hint}; your edit is kept in {name}"
            raise
    os.unlink(name)
    _say(f"{item}: saved version {saved.version} (draft; sha256 {saved.content_hash[:12]})")


@config_app.command("get")
def config_get(
    address: str = typer.Argument(..., help="PROJECT/ENV/SERVICE/FILENAME"),
    version: int | None = typer.Option(None, "--version", help="default: the latest draft"),
    published: bool = typer.Option(False, "--published", help="the published version"),
    rendered: bool = typer.Option(
        False,
        "--rendered",
        help="render a template (secret values masked); with --published, with the variable "
        "versions that publish used",
    ),
    token_file: Path | None = TokenFile,
) -> None:
    """Print a config file (the file alone on stdout)."""
    from quayside.config import items
    from quayside.config.address import ItemAddress
    from quayside.config.errors import VersionNotFound
    from quayside.config.render import render_published, render_version

    item = ItemAddress.parse(address)
    with _center(token_file) as center:
        center.require(item.project, item.environment, edit=False)
        if published and rendered:
            # with the variable versions the publish used, not variables saved since
            done = render_published(center.store, item, box=_box(), reader=_reader())
            if done is None:
                raise VersionNotFound(f"{item} was never published")
            found, text = done.source, done.shown
        elif published:
            marked = items.published(center.store, item)
            if marked is None:
                raise VersionNotFound(f"{item} was never published")
            found, text = marked, marked.content
        else:
            found = items.get(center.store, item, version)
            text = found.content
            if rendered:
                text = render_version(center.store, found, box=_box(), reader=_reader()).shown
    _say(f"{item} v{found.version} by {found.author} ({found.created_at:%Y-%m-%d %H:%M:%S} UTC)")
    sys.stdout.write(text)
    sys.stdout.flush()


@config_app.command("list")
def config_list(
    where: str = typer.Argument(..., help="PROJECT or PROJECT/ENV"),
    token_file: Path | None = TokenFile,
) -> None:
    """List a project's config files: latest draft and published version of each."""
    from rich.table import Table

    from quayside.config import items
    from quayside.config.address import EnvAddress, check_name

    project, _, environment = where.partition("/")
    if environment:
        EnvAddress(project, environment)
    else:
        check_name("project", project)
    with _center(token_file) as center:
        if environment:
            center.require(project, environment, edit=False)
        else:
            center.require_project(project)
        rows = items.states(center.store, project, environment or None)
    if not rows:
        _say(f"{where}: no config files")
        return
    table = Table("file", "latest", "published", "state")
    for row in rows:
        published = "-" if row.published is None else f"v{row.published.version}"
        state = "unpublished draft" if row.unpublished else "published"
        table.add_row(str(row.latest.address), f"v{row.latest.version}", published, state)
    console.print(table)


@config_app.command("history")
def config_history(
    address: str = typer.Argument(..., help="PROJECT/ENV/SERVICE/FILENAME"),
    token_file: Path | None = TokenFile,
) -> None:
    """List every version of a config file, newest first."""
    from rich.table import Table

    from quayside.config import items
    from quayside.config.address import ItemAddress

    item = ItemAddress.parse(address)
    with _center(token_file) as center:
        center.require(item.project, item.environment, edit=False)
        versions = items.history(center.store, item)
        marker = center.store.published_marker(item)
    if not versions:
        _say(f"{item}: no versions")
        return
    table = Table("version", "saved (UTC)", "author", "sha256", "message", "state")
    for v in reversed(versions):
        state = []
        if marker is not None and marker.version == v.version:
            state.append(f"published {marker.at:%Y-%m-%d %H:%M} by {marker.by}")
        if v.version == versions[-1].version and (marker is None or marker.version != v.version):
            state.append("draft")
        if v.restored_from is not None:
            state.append(f"restores v{v.restored_from}")
        if v.template:
            state.append("template")
        table.add_row(
            str(v.version),
            f"{v.created_at:%Y-%m-%d %H:%M:%S}",
            v.author,
            v.content_hash[:12],
            v.message,
            ", ".join(state),
        )
    console.print(table)


@config_app.command("diff")
def config_diff(
    address: str = typer.Argument(..., help="PROJECT/ENV/SERVICE/FILENAME"),
    before: int = typer.Argument(..., help="from this version"),
    after: int | None = typer.Argument(None, help="to this version (default: the latest)"),
    token_file: Path | None = TokenFile,
) -> None:
    """Print the unified diff between two versions (on stdout)."""
    from quayside.config import items
    from quayside.config.address import ItemAddress

    item = ItemAddress.parse(address)
    with _center(token_file) as center:
        center.require(item.project, item.environment, edit=False)
        target = after if after is not None else items.get(center.store, item).version
        text = items.diff(center.store, item, before, target)
    if not text:
        _say(f"{item}: v{before} and v{target} are the same")
        return
    sys.stdout.write(text)
    sys.stdout.flush()


@config_app.command("restore")
def config_restore(
    address: str = typer.Argument(..., help="PROJECT/ENV/SERVICE/FILENAME"),
    version: int = typer.Argument(..., help="the version to bring back"),
    base: int | None = typer.Option(None, "--base", help="the latest version you saw"),
    message: str = typer.Option("", "--message", "-m", help="why"),
    token_file: Path | None = TokenFile,
) -> None:
    """Save an old version's content as a new draft (history is kept)."""
    from quayside.config import items
    from quayside.config.address import ItemAddress

    item = ItemAddress.parse(address)
    with _center(token_file) as center:
        center.require(item.project, item.environment, edit=True)
        saved = items.restore(
            center.store, item, version, author=center.user, base_version=base, message=message
        )
    _say(f"{item}: version {version} restored as version {saved.version} (draft)")


# vars --------------------------------------------------------------------------------------


def _secret_input(file: Path | None) -> str:
    if file is not None:
        return _read_input(file).rstrip("\n")
    if sys.stdin.isatty():
        return str(typer.prompt("secret value", hide_input=True))
    return sys.stdin.read().rstrip("\n")


@vars_app.command("set")
def vars_set(
    env: str = typer.Argument(..., help="PROJECT/ENV"),
    name: str = typer.Argument(..., help="variable name"),
    value: str | None = typer.Argument(None, help="the value (never for a secret)"),
    secret: bool = typer.Option(
        False, "--secret", help="store encrypted, show masked; asked for, or --from-file"
    ),
    from_file: Path | None = typer.Option(None, "--from-file", help="read the value from a file"),
    vault: str | None = typer.Option(
        None, "--vault", help="read the value from Vault at render time: MOUNT/PATH#KEY"
    ),
    base: int | None = typer.Option(None, "--base", help="the version your change starts from"),
    message: str = typer.Option("", "--message", "-m", help="why"),
    token_file: Path | None = TokenFile,
) -> None:
    """Set a variable (a new version)."""
    from quayside.config import variables
    from quayside.config.address import EnvAddress

    where = EnvAddress.parse(env)
    if secret and value is not None:
        raise InputError(
            "a secret never goes on the command line (it would show in ps and the shell "
            "history): leave VALUE out to be asked for it, or use --from-file"
        )
    if vault is not None and (value is not None or from_file is not None):
        raise InputError("--vault takes the value from Vault: give no VALUE or --from-file")
    with _center(token_file) as center:
        center.require(where.project, where.environment, edit=True)
        if vault is not None:
            saved = variables.set_vault_reference(
                center.store,
                where,
                name,
                vault,
                author=center.user,
                reader=_reader(),
                base_version=base,
                message=message,
            )
        else:
            if secret:
                text = _secret_input(from_file)
            elif value is not None:
                text = value
            elif from_file is not None:
                text = _read_input(from_file)
            else:
                raise InputError("give VALUE, --from-file PATH, --secret or --vault REF")
            saved = variables.set_value(
                center.store,
                _box() if secret else None,
                where,
                name,
                text,
                author=center.user,
                secret=secret,
                base_version=base,
                message=message,
            )
        shown = variables.get(center.store, where, name, saved.version).shown
    _say(f"{where} ${name}: version {saved.version} = {shown}")


@vars_app.command("get")
def vars_get(
    env: str = typer.Argument(..., help="PROJECT/ENV"),
    name: str = typer.Argument(..., help="variable name"),
    version: int | None = typer.Option(None, "--version", help="default: the latest"),
    reveal: bool = typer.Option(
        False, "--reveal", help="print a secret's value (DEVELOPER or higher)"
    ),
    token_file: Path | None = TokenFile,
) -> None:
    """Print a variable's value (secrets masked unless --reveal)."""
    from quayside.config import variables
    from quayside.config.address import EnvAddress

    where = EnvAddress.parse(env)
    with _center(token_file) as center:
        center.require(where.project, where.environment, edit=reveal)
        shown = variables.get(center.store, where, name, version)
        if reveal and shown.secret:
            text = variables.reveal(center.store, _box(), where, name, version, _reader())
        else:
            text = shown.shown
    _say(f"{where} ${name} v{shown.version} by {shown.author}")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@vars_app.command("list")
def vars_list(
    env: str = typer.Argument(..., help="PROJECT/ENV"),
    token_file: Path | None = TokenFile,
) -> None:
    """List an environment's variables (secrets as ••••, with the version that changed)."""
    from rich.table import Table

    from quayside.config import variables
    from quayside.config.address import EnvAddress

    where = EnvAddress.parse(env)
    with _center(token_file) as center:
        center.require(where.project, where.environment, edit=False)
        rows = variables.listing(center.store, where)
    if not rows:
        _say(f"{where}: no variables")
        return
    table = Table("name", "version", "value", "set by", "set at (UTC)")
    for row in rows:
        table.add_row(
            row.name, str(row.version), row.shown, row.author, f"{row.created_at:%Y-%m-%d %H:%M:%S}"
        )
    console.print(table)
