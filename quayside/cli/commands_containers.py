"""Operators' commands for image apps: ``quayside ps``, ``logs`` and ``restart`` APP ENV -
straight to each Docker host's engine (no flow run: nothing is released). With a token the
user needs the rights an image release needs on APP/ENV (checked as ``quayside deploy``
checks them); without one the CLI is the platform operator."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from quayside.cli.app import app, console
from quayside.cli.commands_release import AS_HELP, TOKEN_FILE_HELP, _asking
from quayside.errors import InputError


@contextmanager
def _engines(
    app_name: str, env: str, token_file: Path | None, as_name: str | None, host: list[str] | None
) -> Iterator[tuple[Any, list[tuple[str, Any, Any]]]]:
    """The app's image settings and, per host, its engine client and executor (the user's
    rights checked first)."""
    from quayside.auth.run_scope import authorize_run, scope_of_run
    from quayside.deployments.catalogue import by_name
    from quayside.executors.factory import executor_for
    from quayside.images.containers_docker import connect
    from quayside.inventory import load_inventory
    from quayside.inventory.resolve import resolve_target
    from quayside.settings import load_settings

    inventory = load_inventory(load_settings().inventory_path)
    target = resolve_target(inventory, app_name, env, host or None)
    if target.app.image is None:
        raise InputError(f"{app_name} is not an image app (apps.{app_name}.image is not set)")
    with _asking(token_file, as_name) as (requester, ledger):
        if requester.principal is not None and ledger is not None:
            spec = by_name("image-release")
            scope = scope_of_run(
                inventory, deployment=spec.name, kind="app-env",
                minimum_role=spec.minimum_role, params={"app": app_name, "env": env},
            )  # fmt: skip
            authorize_run(ledger, requester.principal, scope)
        opened: list[tuple[str, Any, Any]] = []
        try:
            for name, h in target.hosts:
                if h.docker is None:
                    raise InputError(f"quayside.yaml: hosts.{name}.docker: not set")
                opened.append((name, connect(name, h.docker, timeout_s=30), executor_for(name, h)))
            yield target.app.image.run, opened
        finally:
            for _, client, executor in opened:
                client.close()
                executor.close()


def _serving(run: Any, client: Any, executor: Any, app_name: str, env: str) -> Any:
    from quayside.images.image_release_host import read_state

    return read_state(client, executor, run, app_name, env)


@app.command()
def ps(
    app_name: str = typer.Argument(..., metavar="APP", help="image app from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    host: list[str] | None = typer.Option(None, "--host", help="only this host (repeatable)"),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
) -> None:
    """List APP's containers in ENV on every Docker host; * marks the one nginx sends
    traffic to."""
    from rich.table import Table

    table = Table("", "host", "container", "version", "digest", "config", "status")
    with _engines(app_name, env, token_file, as_name, host) as (run, hosts):
        for name, client, executor in hosts:
            state = _serving(run, client, executor, app_name, env)
            every = [c for c in [state.serving, *state.others] if c is not None]
            for c in sorted(every, key=lambda c: c.name):
                mark = "*" if c is state.serving else ""
                status = c.status + (f" ({c.health})" if c.health else "")
                table.add_row(mark, name, c.name, c.version, c.digest[:19],
                              c.config_version[:12], status)  # fmt: skip
            if not every:
                table.add_row("", name, "-", "-", "-", "-", "no container")
    console.print(table)


@app.command()
def logs(
    app_name: str = typer.Argument(..., metavar="APP", help="image app from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new output"),
    tail: int = typer.Option(100, "--tail", "-n", min=0, max=100_000, help="last N lines"),
    host: list[str] | None = typer.Option(None, "--host", help="only this host (repeatable)"),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
) -> None:
    """Print the output of APP's serving container in ENV, each line prefixed with its host
    (--follow: until interrupted or the containers stop)."""
    from quayside.images.containers_docker import stream_logs

    lock = threading.Lock()

    def pump(name: str, container: Any) -> None:
        rest = b""
        for chunk in stream_logs(container, follow=follow, tail=tail):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            with lock:
                for line in lines:
                    sys.stdout.write(f"{name}: {line.decode(errors='replace')}\n")
                sys.stdout.flush()
        if rest:
            with lock:
                sys.stdout.write(f"{name}: {rest.decode(errors='replace')}\n")

    with _engines(app_name, env, token_file, as_name, host) as (run, hosts):
        threads = []
        for name, client, executor in hosts:
            state = _serving(run, client, executor, app_name, env)
            if state.serving is None:
                console.print(f"{name}: no running container of {app_name}/{env}")
                continue
            t = threading.Thread(target=pump, args=(name, state.serving.container), daemon=True)
            t.start()
            threads.append(t)
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.5)
        except KeyboardInterrupt:
            return


@app.command()
def restart(
    app_name: str = typer.Argument(..., metavar="APP", help="image app from quayside.yaml"),
    env: str = typer.Argument(..., metavar="ENV", help="environment of the app"),
    host: list[str] | None = typer.Option(None, "--host", help="only this host (repeatable)"),
    as_name: str | None = typer.Option(None, "--as", metavar="USER", help=AS_HELP),
    token_file: Path | None = typer.Option(
        None, "--token-file", help=TOKEN_FILE_HELP, dir_okay=False
    ),
) -> None:
    """Restart APP's serving container in ENV, one host after another, each checked (its
    HTTP probe) before the next host restarts."""
    from quayside.images.containers_docker import wait_ready
    from quayside.images.containers_spec import probe_url

    failed = []
    with _engines(app_name, env, token_file, as_name, host) as (run, hosts):
        for name, client, executor in hosts:
            state = _serving(run, client, executor, app_name, env)
            c = state.serving
            if c is None:
                console.print(f"{name}: no running container of {app_name}/{env}")
                continue
            try:
                c.container.restart(timeout=10)
                checked = wait_ready(c.container, probe_url(run, c.slot or 0), run.health_timeout_s)
                console.print(f"{name}: {c.name} restarted; {checked}")
            except Exception as e:
                failed.append(name)
                console.print(f"{name}: {c.name} restart failed: {str(e)[:300]}")
    if failed:
        raise typer.Exit(1)
