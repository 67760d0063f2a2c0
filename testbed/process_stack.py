"""The production stack (infra/compose/docker-compose.yml) as processes on loopback: no image
can be pulled here, so the tests run the compose file's own commands, through its entrypoint
(infra/compose/entrypoint.sh), with its own settings.

What is read from the compose directory, so the two cannot drift: every service's ``command``
and ``environment`` (``${VAR:-default}`` interpolated as compose does), ``quayside.env`` (the
env_file), and the entrypoint that turns the secret files into settings. What differs, and
only this: addresses (127.0.0.1 and free ports instead of service names and 4200/8400),
``/run/secrets/*`` (files in the stack's directory), container paths (each process's own
``QUAYSIDE_HOME``/``PREFECT_HOME``, the inventory, the artifact directory, the project
directory), ``python`` (this interpreter), and each worker's ``--name`` (worker-1, ...).

PostgreSQL (:class:`testbed.postgres.PostgresServer`, role ``quayside``, databases ``prefect``
and ``quayside``) serves both Prefect and the ledger; Redis is Debian's ``redis-server``.
:class:`ProcessStack` needs no pytest; the module-scoped fixture ``process_stack`` starts one.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from testbed.platform import PROJECT_DIR, free_port
from testbed.postgres import PostgresServer

COMPOSE_DIR = PROJECT_DIR / "infra" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_FILE = COMPOSE_DIR / "quayside.env"
ENTRYPOINT = COMPOSE_DIR / "entrypoint.sh"
SECRETS_PREFIX = "/run/secrets/"
DB_ROLE = "quayside"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """``KEY=VALUE`` lines of a compose env_file (comments and blank lines skipped)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value
    return found


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """``${NAME}`` and ``${NAME:-default}`` replaced as compose does (unset and empty take the
    default)."""

    def one(match: re.Match[str]) -> str:
        return variables.get(match["name"]) or (match["default"] or "")

    return _VARIABLE.sub(one, value)


def compose_services(path: Path = COMPOSE_FILE) -> dict[str, dict[str, Any]]:
    """The compose file's services, with its YAML anchors and merge keys resolved."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text())["services"]
    return services


class StackError(RuntimeError):
    """A process of the stack did not start; the message has its log tail."""


class ProcessStack:
    """The compose stack's processes under ``base`` (see the module docstring).

    Args:
        base: directory for everything the stack writes (logs, homes, secrets, Redis).
        inventory: the quayside.yaml the workers and the gateway read.
        workers: how many ``worker`` processes (each a separate Prefect worker).
        worker_args: added to each worker's command after ``--name``: the fixture's
            ``--limit 1`` makes two runs at once go to two workers (an unlimited worker
            takes every run it sees in one poll).
        worker_env: added to each worker's environment (and so its flow runs').
    """

    def __init__(
        self,
        base: Path,
        inventory: Path,
        workers: int = 2,
        worker_args: list[str] | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base
        self.inventory = inventory
        self.worker_count = workers
        self.worker_args = list(worker_args or [])
        self.worker_env = dict(worker_env or {})
        self.prefect_port = free_port()
        self.gateway_port = free_port()
        self.redis_port = free_port()
        self.auth_string = f"ops:{secrets.token_urlsafe(24)}"
        self.postgres: PostgresServer | None = None
        self.redis: subprocess.Popen[bytes] | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.services = compose_services()
        self.shared = read_env_file()

    # -- addresses ----------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def secrets_dir(self) -> Path:
        return self.base / "secrets"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def artifacts_dir(self) -> Path:
        return self.base / "artifacts"

    def ledger_url(self) -> str:
        """The ledger's URL as the entrypoint builds it (trust auth: the password is unused)."""
        assert self.postgres is not None
        return f"postgresql+psycopg://{DB_ROLE}@127.0.0.1:{self.postgres.port}/quayside"

    def worker_names(self) -> list[str]:
        return [f"worker-{i}" for i in range(1, self.worker_count + 1)]

    def compose_variables(self) -> dict[str, str]:
        """What the compose file's ``${...}`` read: this stack's addresses."""
        assert self.postgres is not None
        return {
            "QUAYSIDE_POSTGRES_HOST": "127.0.0.1",
            "QUAYSIDE_POSTGRES_PORT": str(self.postgres.port),
            "QUAYSIDE_REDIS_HOST": "127.0.0.1",
            "QUAYSIDE_REDIS_PORT": str(self.redis_port),
            "QUAYSIDE_PREFECT_API_HOST": "127.0.0.1",
            "QUAYSIDE_PREFECT_API_PORT": str(self.prefect_port),
            "QUAYSIDE_CONSOLE_URL": self.api_url.removesuffix("/api"),
            "QUAYSIDE_ARTIFACTS_URL": self.artifacts_dir.as_uri(),
        }

    # -- what each process runs ---------------------------------------------------------
    def argv(self, service: str, extra: list[str] | None = None) -> list[str]:
        """The service's compose command through the entrypoint, on this interpreter, bound
        to loopback and this stack's port where the command names one."""
        command = [str(a) for a in self.services[service]["command"]]
        if command[0] == "python":
            command[0] = sys.executable
        for flag, value in (("--host", "127.0.0.1"), ("--port", str(self.prefect_port))):
            if flag in command:
                command[command.index(flag) + 1] = value
        return [str(ENTRYPOINT), *command, *(extra or [])]

    def env(self, service: str, home: Path) -> dict[str, str]:
        """The service's environment: quayside.env, then its compose ``environment``
        (interpolated), with secrets and container paths mapped to this machine."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "QUAYSIDE_", "PYTEST_"))
        }
        env.update(self.shared)
        variables = self.compose_variables()
        for key, value in (self.services[service].get("environment") or {}).items():
            text = interpolate(str(value), variables)
            if text.startswith(SECRETS_PREFIX):
                text = str(self.secrets_dir / text.removeprefix(SECRETS_PREFIX))
            env[key] = text
        env.update(
            {
                "QUAYSIDE_HOME": str(home),
                "PREFECT_HOME": str(home / "prefect"),
                "QUAYSIDE_INVENTORY": str(self.inventory),
                "QUAYSIDE_PROJECT_DIR": str(PROJECT_DIR),
            }
        )
        if service == "gateway":
            env["QUAYSIDE_GATEWAY_HOST"] = "127.0.0.1"
            env["QUAYSIDE_GATEWAY_PORT"] = str(self.gateway_port)
        return env

    def client_env(self) -> dict[str, str]:
        """Environment for a client of this stack (the CLI, in-process Prefect clients)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QUAYSIDE_"))}
        env.update(
            {
                "PREFECT_API_URL": self.api_url,
                "PREFECT_API_AUTH_STRING": self.auth_string,
                "QUAYSIDE_DATABASE_URL": self.ledger_url(),
                "QUAYSIDE_INVENTORY": str(self.inventory),
                "QUAYSIDE_HOME": str(self.base / "client"),
                "PREFECT_HOME": str(self.base / "client" / "prefect"),
                "QUAYSIDE_GATEWAY_PORT": str(self.gateway_port),
            }
        )
        return env

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.artifacts_dir.mkdir(mode=0o700, exist_ok=True)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        (self.base / "client" / "prefect").mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.secrets_dir / "prefect-auth-string").write_text(self.auth_string + "\n")
        (self.secrets_dir / "postgres-password").write_text(secrets.token_hex(16) + "\n")
        for f in self.secrets_dir.iterdir():
            f.chmod(0o600)
        self.start_postgres()
        self.start_redis()
        self.run_once("migrate")
        self.run_once("prefect-migrate")
        self.start_service("prefect-server")
        self.wait_healthy("prefect-server", f"{self.api_url}/health", 180)
        self.start_service("prefect-services")
        self.wait_services_healthy(180)
        self.run_once("register")
        self.run_once("reconcile")
        for name in self.worker_names():
            self.start_worker(name)
        self.start_service("gateway")
        self.wait_healthy("gateway", f"{self.gateway_url}/health", 60)

    def start_postgres(self) -> None:
        # the postgres user must reach the cluster's directory (see testbed.postgres)
        self.postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="quayside-pg-stack-")))
        self.postgres.start()
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.postgres.port, user="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE ROLE {DB_ROLE} LOGIN CREATEDB")
            for name in ("prefect", "quayside"):  # POSTGRES_DB and initdb/ in the compose file
                conn.execute(f"CREATE DATABASE {name} OWNER {DB_ROLE}")

    def restart_postgres(self) -> None:
        """Stop PostgreSQL (fast: sessions are cut) and start it again on the same port."""
        assert self.postgres is not None
        pg_ctl = str(self.postgres.bin_dir / "pg_ctl")
        data = str(self.postgres.data_dir)
        log = str(self.postgres.log_file)  # without -l the server keeps pg_ctl's stdout open
        self.postgres._run([pg_ctl, "-D", data, "-l", log, "-m", "fast", "-w", "restart"])

    def start_redis(self) -> None:
        redis_dir = self.base / "redis"
        redis_dir.mkdir(exist_ok=True)
        binary = shutil.which("redis-server", path="/usr/bin:/usr/sbin:/bin")
        if binary is None:
            raise StackError("redis-server not found: install the Debian package redis-server")
        log = (self.logs / "redis.log").open("ab")
        self.redis = subprocess.Popen(
            [
                binary, "--bind", "127.0.0.1", "--port", str(self.redis_port),
                "--save", "", "--appendonly", "no", "--dir", str(redis_dir),
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.redis_port), "ping"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.stdout.strip() == "PONG":
                return
            time.sleep(0.2)
        raise StackError("redis-server did not answer:\n" + self.log_tail("redis"))

    def home(self, name: str) -> Path:
        path = self.base / "homes" / name
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def _popen(self, name: str, service: str, extra: list[str] | None = None) -> None:
        env = self.env(service, self.home(name))
        if service == "worker":
            env.update(self.worker_env)
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.argv(service, extra),
            env=env,
            cwd=PROJECT_DIR,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start_service(self, service: str) -> None:
        self._popen(service, service)

    def start_worker(self, name: str) -> None:
        self._popen(name, "worker", ["--name", name, *self.worker_args])

    def run_once(self, service: str, timeout: float = 300) -> None:
        """A one-shot service (migrate, register): run it to the end; it must succeed."""
        self._popen(service, service)
        process = self.processes.pop(service)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise StackError(f"{service} did not finish:\n{self.log_tail(service)}") from None
        if code != 0:
            raise StackError(f"{service} exited {code}:\n{self.log_tail(service)}")

    def wait_healthy(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise StackError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise StackError(f"{name} did not become healthy:\n{self.log_tail(name)}")

    def healthcheck(
        self, service: str, extra: list[str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``service``'s compose healthcheck run as Docker runs it: its ``test`` command (on
        this interpreter) in the service's environment, not through the entrypoint."""
        kind, *command = [str(a) for a in self.services[service]["healthcheck"]["test"]]
        assert kind == "CMD", f"{service}: healthcheck {kind} is not run here"
        if command[0] == "python":
            command[0] = sys.executable
        return subprocess.run(
            [*command, *(extra or [])],
            env=self.env(service, self.home(f"{service}-health")),
            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def wait_services_healthy(self, timeout: float) -> None:
        """Until the ``prefect-services`` healthcheck passes (the process persists events)."""
        deadline = time.monotonic() + timeout
        while True:
            process = self.processes["prefect-services"]
            if process.poll() is not None:
                raise StackError(
                    f"prefect-services exited {process.returncode}:\n"
                    + self.log_tail("prefect-services")
                )
            check = self.healthcheck("prefect-services")
            if check.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"prefect-services did not become healthy: {check.stdout}{check.stderr}\n"
                    + self.log_tail("prefect-services")
                )
            time.sleep(1)

    def pause_process(self, name: str) -> None:
        """SIGSTOP ``name``'s process group: alive, doing nothing (a wedged process)."""
        os.killpg(self.processes[name].pid, signal.SIGSTOP)

    def resume_process(self, name: str) -> None:
        try:
            os.killpg(self.processes[name].pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # gone already

    def log_tail(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Signal ``name``'s process group (its children too) and wait for it."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def restart_server(self) -> None:
        """Stop the Prefect API server and start it again on the same port."""
        self.stop_process("prefect-server")
        self.start_service("prefect-server")
        self.wait_healthy("prefect-server", f"{self.api_url}/health", 180)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):  # clients first, the server last
            self.resume_process(name)  # a paused one would not act on SIGTERM
            self.stop_process(name)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=10)
        if self.postgres is not None:
            self.postgres.stop()


@pytest.fixture(scope="module")
def process_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    """The production stack as processes (two workers taking one run at a time, their runs
    beating every 30 s), for one test module; its inventory (``stack.inventory``) starts
    empty."""
    from testbed.require import need_binary

    need_binary("redis-server", "redis-server")
    base = tmp_path_factory.mktemp("process-stack")
    inventory = base / "quayside.yaml"
    inventory.write_text("hosts: {}\n")
    stack = ProcessStack(
        base,
        inventory,
        workers=2,
        worker_args=["--limit", "1"],
        # Prefect's shortest heartbeat interval: a test can see a dead run's heartbeats stop;
        # approval gates suspend their run at once (its process ends until the answer)
        worker_env={"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", "QUAYSIDE_APPROVAL_PAUSE_S": "0"},
    )
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    try:
        yield stack
    finally:
        stack.stop()
