"""The production compose file under Debian's docker-compose 1.29 with the testbed's Docker
Engine (issue 19): it validates; the Quayside image builds from the repo's Dockerfile on a
Debian base made here (no image can be pulled: debootstrap --variant=minbase bookworm, then
``docker import``; the root filesystem is cached under ~/.cache/quayside/debian-base, keyed by
a hash of its inputs, so a machine makes it once); and the stack comes up healthy - Prefect's
API answers 401 without the auth string and 200 with it, two workers (``--scale worker=2``)
join the pool and the gateway answers.

What the test overrides (tests/hosts/test_compose_stack.py's override file, nothing else):
the testbed's engine has no bridge networking (no bridge, no iptables), so every service runs
with ``network_mode: host``, the API server and the gateway on loopback and free ports; and
``postgres`` and ``redis`` (official images that cannot be pulled here) are stand-ins from the
Quayside image that wait for the testbed's PostgreSQL and Redis on the host, which the stack
then uses through the compose file's own ``QUAYSIDE_POSTGRES_*``/``QUAYSIDE_REDIS_*``
variables (as with a managed database).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from testbed.docker_engine import DockerEngine
from testbed.platform import free_port
from testbed.postgres import PostgresServer
from testbed.process_stack import COMPOSE_FILE, DB_ROLE

# a first build on a machine installs every locked dependency from PyPI into the image
pytestmark = [
    pytest.mark.xdist_group("compose-stack"),
    pytest.mark.postgres,
    pytest.mark.timeout(3600),
]

SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = "http://deb.debian.org/debian"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "quayside" / "debian-base"
IMAGE = "quayside-compose-test:latest"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def debootstrap_version() -> str:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "debootstrap"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def base_tarball() -> Path:
    """The Debian root filesystem as a tar file, made once per machine and input hash."""
    inputs = json.dumps([SUITE, VARIANT, MIRROR, debootstrap_version()]).encode()
    key = hashlib.sha256(inputs).hexdigest()[:16]
    tarball = CACHE / f"{SUITE}-{VARIANT}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".make-") as tmp:
        root = Path(tmp) / "root"
        subprocess.run(
            ["debootstrap", f"--variant={VARIANT}", SUITE, str(root), MIRROR],
            check=True,
            capture_output=True,
            timeout=900,
        )
        partial = Path(tmp) / "base.tar"
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
            check=True,
            timeout=300,
        )
        os.replace(partial, tarball)  # whole or absent: a killed run leaves no half file
    return tarball


def proxy_certificates() -> str:
    """This machine's own CA certificates (a TLS-intercepting proxy's, if any), base64: the
    image's build reaches PyPI through the same network."""
    pem = b"".join(p.read_bytes() for p in sorted(LOCAL_CAS.glob("*.crt")))
    return base64.b64encode(pem).decode()


def docker(engine: DockerEngine, *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        ["docker", *args],
        env={**os.environ, "DOCKER_HOST": engine.url},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"docker {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Compose:
    """``docker-compose`` with the production file, the test's override and variables."""

    def __init__(self, engine: DockerEngine, override: Path, variables: dict[str, str]) -> None:
        self.engine = engine
        self.override = override
        self.project = f"qs-compose-{uuid.uuid4().hex[:8]}"
        self.variables = variables

        self.resolved: Path | None = None

    def __call__(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QUAYSIDE_"))}
        env.update(self.variables)
        env["DOCKER_HOST"] = self.engine.url
        argv = ["docker-compose", "-p", self.project]
        if self.resolved is not None:
            argv += ["-f", str(self.resolved), *args]
        else:
            argv += ["-f", str(COMPOSE_FILE), "-f", str(self.override), *args]
        return subprocess.run(
            argv,
            env=env,
            cwd=COMPOSE_FILE.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def resolve_without_ports(compose: Compose) -> None:
    """Use the merged configuration (``docker-compose config`` of the file and the override)
    minus ``ports``: host networking publishes nothing, and docker-compose refuses the two
    together while an override file can only add to a list."""
    done = compose("config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    for service in config["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    resolved = compose.override.with_name("docker-compose.resolved.yml")
    resolved.write_text(yaml.safe_dump(config))
    compose.resolved = resolved


def health_check(url: str) -> list[str]:
    return ["CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen({url!r})"]


def port_check(port: int) -> list[str]:
    return [
        "CMD",
        "python",
        "-c",
        f"import socket; socket.create_connection(('127.0.0.1', {port}))",
    ]


def write_override(path: Path, api_port: int, gateway_port: int, pg: int, redis: int) -> None:
    """Host networking for every service, loopback binds on free ports, and stand-ins for the
    PostgreSQL and Redis services (see the module docstring)."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    override: dict[str, dict[str, dict[str, object]]] = {"services": {}}
    for name, service in services.items():
        override["services"][name] = {"network_mode": "host"}
        if "build" in service:  # apt and PyPI during the build, through the host's network
            override["services"][name]["build"] = {"network": "host"}
    for name, port in (("postgres", pg), ("redis", redis)):
        override["services"][name].update(
            image=IMAGE,
            entrypoint=["python", "-c", "import time; time.sleep(10**9)"],
            healthcheck={"test": port_check(port), "interval": "2s", "retries": 30},
        )
    override["services"]["prefect-server"].update(
        command=["python", "-m", "prefect", "server", "start", "--no-services", "--workers", "2",
                 "--host", "127.0.0.1", "--port", str(api_port)],
        healthcheck={"test": health_check(f"http://127.0.0.1:{api_port}/api/health")},
    )  # fmt: skip
    gateway = {"QUAYSIDE_GATEWAY_HOST": "127.0.0.1", "QUAYSIDE_GATEWAY_PORT": str(gateway_port)}
    override["services"]["gateway"].update(
        environment=gateway,
        healthcheck={"test": health_check(f"http://127.0.0.1:{gateway_port}/health")},
    )
    path.write_text(yaml.safe_dump(override))


@pytest.fixture(scope="module")
def base_image(docker_engine: DockerEngine) -> str:
    from testbed.require import need_binary

    need_binary("debootstrap", "debootstrap")
    tarball = base_tarball()
    name = f"quayside-debian-base:{tarball.stem.rsplit('-', 1)[-1]}"
    docker(docker_engine, "import", str(tarball), name)
    return name


@pytest.fixture(scope="module")
def compose(
    docker_engine: DockerEngine,
    base_image: str,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Compose]:
    from testbed.require import need_binary

    need_binary("docker-compose", "docker-compose")
    redis_bin = need_binary("redis-server", "redis-server")
    base = tmp_path_factory.mktemp("compose")
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=postgres_server.port, user="postgres", autocommit=True
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_ROLE,)).fetchone():
            conn.execute(f"CREATE ROLE {DB_ROLE} LOGIN")
        for name in ("prefect", "quayside"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name} OWNER {DB_ROLE}")
    redis_port = free_port()
    redis = subprocess.Popen(
        [redis_bin, "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
         "--dir", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    # the secrets: a private directory, files readable in the containers (their own users)
    secrets_dir = base / "secrets"
    secrets_dir.mkdir(mode=0o700)
    auth = f"ops:{uuid.uuid4().hex}"
    (secrets_dir / "prefect-auth-string").write_text(auth + "\n")
    (secrets_dir / "postgres-password").write_text(uuid.uuid4().hex + "\n")
    for f in secrets_dir.iterdir():
        f.chmod(0o444)
    inventory = base / "quayside.yaml"
    inventory.write_text("hosts: {}\n")
    inventory.chmod(0o644)
    (base / "ssh").mkdir(mode=0o755)
    api_port, gateway_port = free_port(), free_port()
    override = base / "docker-compose.test.yml"
    write_override(override, api_port, gateway_port, postgres_server.port, redis_port)
    stack = Compose(
        docker_engine,
        override,
        {
            "QUAYSIDE_IMAGE": IMAGE,
            "QUAYSIDE_BASE_IMAGE": base_image,
            "QUAYSIDE_EXTRA_CA_CERTS_B64": proxy_certificates(),
            "QUAYSIDE_SECRETS_DIR": str(secrets_dir),
            "QUAYSIDE_INVENTORY_FILE": str(inventory),
            "QUAYSIDE_SSH_DIR": str(base / "ssh"),
            "QUAYSIDE_POSTGRES_HOST": "127.0.0.1",
            "QUAYSIDE_POSTGRES_PORT": str(postgres_server.port),
            "QUAYSIDE_REDIS_HOST": "127.0.0.1",
            "QUAYSIDE_REDIS_PORT": str(redis_port),
            "QUAYSIDE_PREFECT_API_HOST": "127.0.0.1",
            "QUAYSIDE_PREFECT_API_PORT": str(api_port),
            "QUAYSIDE_TEST_AUTH": auth,
            "QUAYSIDE_TEST_GATEWAY": f"http://127.0.0.1:{gateway_port}",
        },
    )
    try:
        yield stack
    finally:
        stack("down", "-v", "--remove-orphans", timeout=300)
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(base / "ssh", ignore_errors=True)


def test_the_compose_file_validates(compose: Compose) -> None:
    done = compose("config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert {"postgres", "redis", "prefect-server", "prefect-services", "worker", "gateway"} <= set(
        config["services"]
    )
    server = config["services"]["prefect-server"]
    assert "--no-services" in server["command"]
    # several API processes: the database is prepared once, before them
    assert server["command"][server["command"].index("--workers") + 1] == "2"
    assert server["environment"]["PREFECT_API_DATABASE_MIGRATE_ON_START"] == "false"
    assert server["depends_on"]["prefect-migrate"]["condition"] == "service_completed_successfully"
    # the string comes from a secret file, never from the compose file or an argv
    assert compose.variables["QUAYSIDE_TEST_AUTH"] not in done.stdout


def build_image(engine: DockerEngine, variables: dict[str, str], log: Path) -> None:
    """The Quayside image from the repo's Dockerfile with the compose file's build arguments,
    built once (``docker-compose build`` builds it again for each of the services that name
    it), through the host's network."""
    with log.open("w") as out:
        done = subprocess.run(
            ["docker", "build", "--network", "host", "-t", IMAGE, "-f", "Dockerfile",
             "--build-arg", f"BASE_IMAGE={variables['QUAYSIDE_BASE_IMAGE']}",
             "--build-arg", f"EXTRA_CA_CERTS_B64={variables['QUAYSIDE_EXTRA_CA_CERTS_B64']}",
             "."],
            env={**os.environ, "DOCKER_HOST": engine.url},
            cwd=COMPOSE_FILE.parent.parent.parent,
            stdout=out, stderr=subprocess.STDOUT, timeout=3000, check=False,
        )  # fmt: skip
    assert done.returncode == 0, log.read_text()[-3000:]


def test_the_stack_builds_and_comes_up_healthy(compose: Compose, tmp_path: Path) -> None:
    build_image(compose.engine, compose.variables, tmp_path / "build.log")
    resolve_without_ports(compose)
    up = compose("up", "-d", "--no-build", "--scale", "worker=2")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]

    api = f"http://127.0.0.1:{compose.variables['QUAYSIDE_PREFECT_API_PORT']}/api"
    good = httpx.BasicAuth(*compose.variables["QUAYSIDE_TEST_AUTH"].split(":", 1))
    deadline = time.monotonic() + 300
    workers: list[str] = []
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(f"{api}/work_pools/quayside/workers/filter", json={}, auth=good)
            workers = [w["name"] for w in answer.json()] if answer.status_code == 200 else []
        except httpx.HTTPError:
            workers = []
        if len(workers) == 2:
            break
        time.sleep(2)
    logs = compose("logs", "--no-color", "--tail", "40").stdout[-4000:]
    assert len(workers) == 2, logs

    assert httpx.post(f"{api}/deployments/filter", json={}).status_code == 401
    listed = httpx.post(f"{api}/deployments/filter", json={}, auth=good)
    assert listed.status_code == 200
    assert "git-deploy" in {d["name"] for d in listed.json()}
    assert httpx.get(f"{compose.variables['QUAYSIDE_TEST_GATEWAY']}/health").status_code == 200
    for service in ("prefect-server", "prefect-services", "gateway"):
        assert health_of(compose, service) == "healthy", compose("ps").stdout


def health_of(compose: Compose, service: str, wait_s: float = 120) -> str:
    """The Docker health status of ``service``'s first container, once it is no longer
    ``starting`` (or after ``wait_s``): read with ``docker inspect``, not from the columns of
    ``docker-compose ps``, whose layout and name truncation vary."""
    found = compose("ps", "-q", service).stdout.split()
    assert found, f"no container for {service}: {compose('ps').stdout}"
    status = ""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        status = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", found[0]],
            env={**os.environ, "DOCKER_HOST": compose.engine.url},
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if status != "starting":
            return status
        time.sleep(2)
    return status
