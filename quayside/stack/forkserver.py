"""A pre-forking flow-run launcher: ``python -m quayside.stack.forkserver``, started by
``quayside up``.

It imports Prefect's engine and the catalogue's flow modules once, then listens on a unix
socket (:func:`socket_path`, in QUAYSIDE_HOME). The process work pool's command
(:mod:`quayside.stack.launcher`) connects, passes its stdin/stdout/stderr, environment, working
directory and argv; the server forks a *handler*, which forks the *flow run* child. The child
takes the passed descriptors and environment, refreshes Prefect's settings from that
environment and runs ``prefect.engine`` as ``__main__`` -- what ``python -m prefect.engine``
would do, without paying for the imports (seconds on a loaded machine).

The child ends with ``os._exit`` (it must not run the fork server's exit handlers), which
skips what interpreter exit does for a Prefect process: sending the logs and events still
queued in Prefect's background services. :func:`flush_prefect` does that first, so every
run's last log lines (the engine's "Finished in state ..." included) reach the API.

The handler waits for the child and sends its exit status back; a signal the launcher command
receives (the worker cancelling the run) is forwarded to the child, and if the launcher
command disappears (killed) the child is killed. Handlers and flow runs get SIGTERM when their
parent dies (:mod:`quayside.stack.parent_death`): nothing outlives a killed fork server.

Code changes: the flow's own file is executed per run (Prefect loads the entrypoint script),
but the project modules it imports (``quayside``, ``tasks``, ``blocks``, ...) were imported
when the server started. Before every fork the server compares their files' mtimes with
the ones it imported; if any changed (a deploy of new code, an edit), it answers
``{"fallback": ...}`` (the launcher then runs ``python -m prefect.engine`` itself, with the
new code) and re-executes itself to import the new code. A run never mixes old and new code.

Before serving, the server also builds what each run would otherwise build for itself: the
ledger's ORM mappers and Prefect's deferred pydantic models; then it freezes what it made
for the garbage collector, so the runs' collections do not copy the pages they share. Each
child makes Prefect's watch for an outside suspension run beside the flow
(:mod:`quayside.stack.suspension_watch`).

Fork safety: this process never starts a thread, an event loop or a Prefect client; it only
imports modules. :func:`preload` checks there is still one thread before serving.

Protocol (one connection per flow run), JSON lines:
    launcher -> server: ``{"env": {...}, "cwd": "...", "argv": [...]}`` with 3 fds (SCM_RIGHTS)
    server -> launcher: ``{"pid": N}`` then ``{"exit": CODE}`` or ``{"signal": N}``
    launcher -> server: ``{"kill": SIGNUM}`` (any number of times)
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quayside.stack.parent_death import die_with_parent

#: Modules imported before serving (module names; failures are reported, not fatal): Prefect's
#: engine, and what every release run still imported after the fork when this list held only
#: the engine (measured with a git deploy: Prefect's task engine, concurrency and run-graph
#: modules with graphviz, anyio's asyncio backend, the ledger's sqlite3, the release reconcile
#: modules its lock reads) -- each run paid for those imports again.
PRELOAD = (
    "prefect",
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "prefect.concurrency.services",
    "prefect.concurrency._sync",
    "prefect.concurrency._asyncio",
    "prefect._internal.observers",
    "anyio._backends._asyncio",
    "anyio.streams.tls",
    "anyio.streams.stapled",
    "sqlite3",
    "encodings.idna",
    "_strptime",
    "stringprep",
    "rich._emoji_codes",
    "quayside.release.reconcile",
    "quayside.release.served",
    "quayside.release.fleet_summary",
    "quayside.ledger.release_interruptions",
    "quayside.stack.suspension_watch",
    "prefect._flow_run_suspension",
)
MAX_REQUEST = 1 << 20
#: longest wait for each of Prefect's services to send what is queued when a run ends (Prefect's
#: own ``APILogHandler.flush`` waits 5 s)
FLUSH_TIMEOUT_S = 10.0


def socket_path(env: Mapping[str, str] | None = None) -> Path:
    """``$QUAYSIDE_HOME/run/launcher.sock`` (the launcher and the server agree on it)."""
    env = os.environ if env is None else env
    home = env.get("QUAYSIDE_HOME") or str(Path.home() / ".quayside")
    return Path(home) / "run" / "launcher.sock"


def catalogue_modules() -> list[str]:
    """Dotted module names of the catalogue's entrypoints (``quayside.flows.git_deploy``, ...)."""
    from quayside.deployments.catalogue import CATALOGUE

    names = []
    for spec in CATALOGUE:
        module = spec.module_entrypoint.split(":", 1)[0]
        if module not in names:
            names.append(module)
    return names


def preload(modules: list[str]) -> list[str]:
    """Import ``modules``; returns the ones that failed (their run pays the import itself).

    Raises:
        RuntimeError: an import started a thread (forking would be unsafe).
    """
    import importlib

    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # a broken flow module must not stop the platform
            print(f"forkserver: could not preload {name}: {e}", file=sys.stderr, flush=True)
            failed.append(name)
    if threading.active_count() != 1:
        names = ", ".join(t.name for t in threading.enumerate())
        raise RuntimeError(f"forkserver: preloading started threads ({names}); not forking")
    return failed


def configure_ledger_mappers() -> None:
    """Configure the ledger's ORM mappers once here: each run's first ledger query would
    otherwise do it (tens of milliseconds of CPU per run, seen in a git deploy's profile)."""
    try:
        from sqlalchemy.orm import configure_mappers

        import quayside.ledger.models  # noqa: F401 - every mapped class

        configure_mappers()
    except Exception as e:  # a run configures them itself, as without this
        print(f"forkserver: could not configure the ledger's mappers: {e}", file=sys.stderr)


def build_deferred_models() -> int:
    """Build the validators of the imported Prefect models that defer building them to their
    first use (Prefect's schemas: the flow run, states, logs, events - about 250 models):
    every run process otherwise builds the ones it uses again (seen in a run's profile as
    pydantic's ``attempt_rebuild`` under its first API read). Returns how many were built."""
    import inspect

    from pydantic import BaseModel

    built = 0
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "prefect" or name.startswith("prefect.")):
            continue
        for value in list(vars(module).values()):
            if not (inspect.isclass(value) and issubclass(value, BaseModel)):
                continue
            if value.__module__ != name or value.__pydantic_complete__:
                continue
            with contextlib.suppress(Exception):  # built at first use, as without this
                value.model_rebuild()
                built += 1
    return built


def freeze_imported_objects() -> None:
    """Move every object this server made so far out of the garbage collector's sight
    (``gc.freeze``): a run's first collections would otherwise walk all of them, writing to
    each one's header, and so copy nearly every memory page it shares with this server -
    time at the run's start (its threads seen waiting to start, py-spy) and memory per run."""
    import gc

    gc.collect()
    gc.freeze()


def warm_inventory() -> None:
    """Parse the platform's inventory here if its text changed since the last parse, so the
    runs forked next find it parsed (``load_inventory`` reuses the model while the file's
    text is the same; a run reads it to resolve its target, check its submitter and notify).
    Costs a read of the file per run; a missing or invalid file is left to the run to report.
    """
    try:
        from quayside.inventory import load_inventory
        from quayside.settings import load_settings

        load_inventory(load_settings().inventory_path)
    except Exception:  # noqa: BLE001 - the run reads it again and says what is wrong
        return


def project_files(root: Path) -> dict[str, int]:
    """``{path: mtime_ns}`` of every imported module file under ``root`` outside virtualenvs
    and site-packages (the project's own code)."""
    files: dict[str, int] = {}
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not name:
            continue
        path = Path(name)
        if not path.is_relative_to(root) or {".venv", "site-packages"} & set(path.parts):
            continue
        with contextlib.suppress(OSError):
            files[str(path)] = path.stat().st_mtime_ns
    return files


def changed_files(snapshot: Mapping[str, int]) -> list[str]:
    """The files of ``snapshot`` whose mtime differs now (or that are gone)."""
    changed = []
    for name, mtime in snapshot.items():
        try:
            if os.stat(name).st_mtime_ns != mtime:
                changed.append(name)
        except OSError:
            changed.append(name)
    return changed


def _recv_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data = b""
    fds: list[int] = []
    while not data.endswith(b"\n"):
        chunk, more_fds, _, _ = socket.recv_fds(conn, 65536, 8)
        fds.extend(more_fds)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    request = json.loads(data)
    if not isinstance(request, dict):
        raise ValueError("request must be a JSON object")
    return request, fds


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def flush_prefect(timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Send what Prefect's background services still hold -- the run's last log lines
    (``APILogWorker``, batched every 2 s) and events (``EventsWorker``: task-run states) --
    and wait for them, as Prefect does at interpreter exit (``threading._register_atexit``
    drains every service). ``os._exit`` skips interpreter exit, so a forked run calls this
    first. Services that were never imported or started are skipped; never raises.
    """
    for module_name, class_name in (
        ("prefect.logging.handlers", "APILogWorker"),
        ("prefect.events.worker", "EventsWorker"),
    ):
        module = sys.modules.get(module_name)
        service = getattr(module, class_name, None) if module is not None else None
        if service is None:
            continue
        try:
            service.drain_all(timeout=timeout_s)
        except Exception as e:  # the run's outcome is decided; report and go on
            print(f"forkserver: could not flush {class_name}: {e!r}", file=sys.stderr)


#: the files in the working directory Prefect 3.8 reads settings from
SETTINGS_FILES = (".env", "prefect.toml", "pyproject.toml")

#: a file's identity in :func:`settings_basis`: (path, mtime in ns, size), or None if absent
FileStamp = tuple[str, int, int] | None
SettingsBasis = tuple[str, dict[str, str], tuple[FileStamp, ...]]


def _stamp(path: Path) -> FileStamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_mtime_ns, st.st_size


def _profiles_path(env: dict[str, str]) -> Path:
    """Where Prefect reads its profiles (``PREFECT_PROFILES_PATH``, else under
    ``PREFECT_HOME``, else ``~/.prefect``)."""
    if env.get("PREFECT_PROFILES_PATH"):
        return Path(env["PREFECT_PROFILES_PATH"]).expanduser()
    return Path(env.get("PREFECT_HOME") or "~/.prefect").expanduser() / "profiles.toml"


def settings_basis() -> SettingsBasis:
    """What Prefect's settings are built from here: the working directory and its settings
    files (``.env``, ``prefect.toml``, ``pyproject.toml``: each one's mtime and size, so an
    edit after this server started counts), the profiles file, and the ``PREFECT_*``
    environment (``PREFECT__*`` are run markers, not settings)."""
    cwd = os.getcwd()
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("PREFECT_") and not k.startswith("PREFECT__")
    }
    files = [Path(cwd) / name for name in SETTINGS_FILES] + [_profiles_path(env)]
    return cwd, env, tuple(_stamp(f) for f in files)


#: :func:`settings_basis` when this server imported Prefect (set by :func:`main`): a run
#: whose basis is the same needs no new settings (building them: ~30 ms of CPU per run)
_IMPORTED_WITH: SettingsBasis | None = None


def _run_child(request: dict[str, Any], fds: list[int]) -> None:
    """In the flow-run child: become ``python -m prefect.engine`` (never returns)."""
    code = 1
    try:
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        os.chdir(request.get("cwd") or "/")
        import random

        random.seed()
        if settings_basis() != _IMPORTED_WITH:  # else Prefect's settings are already these
            import prefect.context

            prefect.context.refresh_global_settings_context()
        from quayside.stack.suspension_watch import install

        install()  # Prefect's watch for an outside suspension, off the run's start and end
        import runpy
        import warnings

        # prefect.engine is already imported (that is the point); runpy warns about it
        warnings.filterwarnings(
            "ignore", message=r"'prefect\.engine' found in sys\.modules", category=RuntimeWarning
        )
        sys.argv = [str(a) for a in request.get("argv") or ["prefect.engine"]]
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        flush_prefect()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _handle(conn: socket.socket, server_pid: int) -> None:
    """In the handler: fork the flow run, relay signals and its exit status (never returns)."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        die_with_parent(server_pid)
        request, fds = _recv_request(conn)
        handler_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            conn.close()
            die_with_parent(handler_pid)
            _run_child(request, fds)
        for fd in fds:
            os.close(fd)
        _send(conn, {"pid": pid})
        buffer = b""
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if os.WIFSIGNALED(status):
                    _send(conn, {"signal": os.WTERMSIG(status)})
                else:
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                code = 0
                break
            readable, _, _ = select.select([conn], [], [], 0.2)
            if not readable:
                continue
            chunk = conn.recv(4096)
            if not chunk:  # the launcher command is gone: so is its flow run
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    sig = int(json.loads(line)["kill"])
                    if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGHUP):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, sig)
    except BaseException as e:
        print(f"forkserver handler: {e!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(code)


def serve(path: Path, snapshot: Mapping[str, int] | None = None) -> None:
    """Accept launcher connections on ``path`` until SIGTERM/SIGINT; when a file of
    ``snapshot`` changed, answer ``fallback`` and re-execute this server."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        server.bind(str(path))
    finally:
        os.umask(old_umask)
    server.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped automatically
    print(f"forkserver: ready on {path} (pid {os.getpid()})", file=sys.stderr, flush=True)
    try:
        while True:
            conn, _ = server.accept()
            sys.stdout.flush()
            sys.stderr.flush()
            changed = changed_files(snapshot or {})
            if changed:
                _send(conn, {"fallback": f"code changed: {changed[0]}"})
                conn.close()
                server.close()
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                print(
                    f"forkserver: {len(changed)} file(s) changed ({changed[0]}); reloading",
                    file=sys.stderr,
                    flush=True,
                )
                os.execv(sys.executable, [sys.executable, "-m", "quayside.stack.forkserver"])
            warm_inventory()
            server_pid = os.getpid()
            try:
                pid = os.fork()
            except OSError as e:
                print(f"forkserver: fork failed: {e}", file=sys.stderr, flush=True)
                conn.close()
                continue
            if pid == 0:
                server.close()
                _handle(conn, server_pid)
            conn.close()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def main() -> None:
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    global _IMPORTED_WITH
    _IMPORTED_WITH = settings_basis()
    failed = preload([*PRELOAD, *catalogue_modules()])
    if failed:
        print(f"forkserver: runs of {', '.join(failed)} import them per run", file=sys.stderr)
    configure_ledger_mappers()
    build_deferred_models()
    freeze_imported_objects()
    if threading.active_count() != 1:  # what ran after the imports must not start any either
        names = ", ".join(t.name for t in threading.enumerate())
        raise RuntimeError(f"forkserver: preparing started threads ({names}); not forking")

    from quayside.project_root import PROJECT_DIR

    root = PROJECT_DIR
    serve(socket_path(), project_files(root))


if __name__ == "__main__":
    main()
