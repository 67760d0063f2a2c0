"""Operators' commands for image apps: ``quayside ps``, ``logs`` and ``restart`` APP ENV -
straight to each Docker host's engine (no flow run: nothing is released). With a token the
user needs the rights an image release needs on APP/ENV (checked as ``quayside deploy``
checks them); without one the CLI is the platform operator. The work is in
:mod:`quayside.images.containers_ops`, shared with the gateway."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from quayside.cli.app import app, console
from quayside.cli.run_requests import AS_HELP, TOKEN_FILE_HELP, asking

HOST_HELP = "only this host (repeatable)"


def _target(
    app_name: str, env: str, token_file: Path | None, as_name: str | None, host: list[str] | None
) -> Any:
    """The app's environment, after checking the token's user may release it."""
    from quayside.auth.run_scope import authorize_run, scope_of_run
    from quayside.deployments.catalogue import by_name
    from quayside.inventory import load_inventory
    from quayside.inventory.resolve import resolve_target
    from quayside.settings import load_settings

    inventory = load_inventory(load_settings().inventory_path)
    target = resolve_target(inventory, app_name, env, host or None)
    with asking(token_file, as_name) as (requester, ledger):
        if requester.principal is not None and ledger is not None:
            spec = by_name("image-release")
            scope = scope_of_run(
                inventory, deployment=spec.name, kind="app-env",
                minimum_role=spec.minimum_role, params={"app": app_name, "env": env},
            )  # fmt: skip
            authorize_run(ledger, requester.principal, scope)
    return target


@app.command()
def ps(
    app_name: str = typer.Argument(..., metavar="APP", help="image app from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    host: list[str] | None = typer.Option(None, "--host", help=HOST_HELP),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
) -> None:
    """List APP's containers in ENV on every Docker host; * marks the one nginx sends
    traffic to."""
    from rich.table import Table

    from quayside.images.containers_ops import container_rows

    target = _target(app_name, env, token_file, as_name, host)
    rows = container_rows(target)
    table = Table("", "host", "container", "version", "digest", "config", "status")
    for r in rows:
        status = r["status"] + (f" ({r['health']})" if r["health"] else "")
        table.add_row("*" if r["serving"] else "", r["host"], r["name"], r["version"],
                      r["digest"][:19], r["config_version"][:12], status)  # fmt: skip
    for name in target.host_names:
        if not any(r["host"] == name for r in rows):
            table.add_row("", name, "-", "-", "-", "-", "no container")
    console.print(table)


@app.command()
def logs(
    app_name: str = typer.Argument(..., metavar="APP", help="image app from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new output"),
    tail: int = typer.Option(100, "--tail", "-n", min=0, max=100_000, help="last N lines"),
    host: list[str] | None = typer.Option(None, "--host", help=HOST_HELP),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
) -> None:
    """Print the output of APP's serving container in ENV, each line prefixed with its host
    (--follow: until interrupted or the containers stop)."""
    from quayside.images.containers_logs import LogPump

    target = _target(app_name, env, token_file, as_name, host)
    with LogPump(target, tail=tail, follow=follow) as pump:
        for name in pump.idle:
            sys.stderr.write(f"{name}: no running container of {app_name}/{env}\n")
        try:
            for line in pump.lines(wake_s=0.5):
                if line is not None:
                    out = sys.stderr if line.error else sys.stdout
                    out.write(line.shown() + "\n")
                    out.flush()
        except KeyboardInterrupt:  # Ctrl-C ends a follow: not an error
            return


@app.command()
def restart(
    app_name: str = typer.Argument(..., metavar="APP", help="image app from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    host: list[str] | None = typer.Option(None, "--host", help=HOST_HELP),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
) -> None:
    """Restart APP's serving container in ENV, one host after another, each checked (its
    HTTP probe) before the next host restarts."""
    from quayside.images.containers_ops import restart_serving

    results = restart_serving(_target(app_name, env, token_file, as_name, host))
    for name, r in results.items():
        what = f"{r['container']} " if r["container"] else ""
        console.print(f"{name}: {what}{r['message']}")
    if not all(r["ok"] for r in results.values()):
        raise typer.Exit(1)
