"""Platform commands: up, check, db upgrade, deployments."""

from __future__ import annotations

from pathlib import Path

import typer

from quayside.cli.app import app, console, err_console
from quayside.errors import ConfigError
from quayside.project_root import PROJECT_DIR
from quayside.settings import load_settings

db_app = typer.Typer(help="The release ledger database.", no_args_is_help=True)
deployments_app = typer.Typer(help="The flow catalogue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(deployments_app, name="deployments")


@app.command()
def up(
    listen: str | None = typer.Option(
        None,
        "--listen",
        metavar="ADDRESS",
        help="address to serve the Prefect UI and API on (default QUAYSIDE_PREFECT_LISTEN, "
        "else 127.0.0.1); off loopback (0.0.0.0) it needs an auth string you chose",
    ),
    auth_string_file: Path | None = typer.Option(
        None,
        "--auth-string-file",
        metavar="FILE",
        help="file holding the Prefect API's user:password auth string (default "
        "QUAYSIDE_PREFECT_AUTH_STRING_FILE; else PREFECT_SERVER_API_AUTH_STRING, else one "
        "generated into QUAYSIDE_HOME/api-auth)",
    ),
) -> None:
    """Run the platform in the foreground: Prefect server + UI, a worker and the gateway.

    State lives in QUAYSIDE_HOME (default ~/.quayside); a second `up` on the same data
    directory finds every earlier run and release. Ctrl-C stops everything it started.
    """
    from quayside.stack.listen import with_listen
    from quayside.stack.up import run_up

    settings = load_settings()
    if listen is not None:
        settings = with_listen(settings, listen)
    elif settings.prefect_listen:
        settings = with_listen(settings, settings.prefect_listen)
    run_up(
        settings,
        PROJECT_DIR,
        lambda line: console.print(line, highlight=False),
        auth_string_file=auth_string_file,
    )


@app.command()
def check(
    path: Path | None = typer.Argument(
        None, help="inventory file (default: QUAYSIDE_INVENTORY or ./quayside.yaml)"
    ),
) -> None:
    """Validate quayside.yaml: every problem is printed with its key path.

    Task templates are checked against the flow catalogue (deployments, parameters); warnings
    (a deprecated task_aliases, task templates without a timezone) do not fail the check.
    """
    from quayside.cli.inventory_checks import check_inventory
    from quayside.inventory import load_inventory

    target = path or load_settings().inventory_path
    inventory = load_inventory(target)
    report = check_inventory(inventory)
    for line in report.warnings:
        err_console.print(f"[yellow]warning:[/] {target}: {line}", highlight=False, soft_wrap=True)
    if report.errors:
        raise ConfigError("\n".join(f"{target}: {line}" for line in report.errors))
    apps = len(inventory.apps)
    envs = sum(len(a.environments) for a in inventory.apps.values())
    console.print(
        f"{target}: ok ({len(inventory.hosts)} hosts, {len(inventory.groups)} groups, "
        f"{apps} apps, {envs} environments)",
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the ledger database to the newest schema."""
    from quayside.ledger.db import migrate

    settings = load_settings()
    migrate(settings.database_url)
    console.print(f"ledger at {settings.database_url.split('@')[-1]} is up to date")


@deployments_app.command("render")
def deployments_render(
    write: bool = typer.Option(False, "--write", help="write prefect.yaml instead of printing"),
) -> None:
    """Print (or write) prefect.yaml generated from quayside/deployments/catalogue.py."""
    from quayside.deployments.render import render

    text = render()
    if write:
        (PROJECT_DIR / "prefect.yaml").write_text(text)
        console.print(f"wrote {PROJECT_DIR / 'prefect.yaml'}")
    else:
        typer.echo(text, nl=False)


@deployments_app.command("list")
def deployments_list() -> None:
    """List the catalogue."""
    from rich.table import Table

    from quayside.deployments.catalogue import CATALOGUE

    table = Table("name", "flow", "entrypoint", "description")
    for spec in CATALOGUE:
        table.add_row(spec.name, spec.flow_name, spec.entrypoint, spec.description)
    console.print(table)


__all__ = ["ConfigError"]
