"""A Docker host reached over ``tcp://`` (plain and TLS with client certificates) and over
``ssh://`` (issue 18): the real engine behind a loopback TCP relay, a TLS relay, and behind
an sshd host whose login user runs the docker CLI
(``docker system dial-stdio``); a container released, listed and its logs read through
Quayside's code (the release's host code, then ``quayside ps/logs`` as a user types them);
an engine that does not answer, an SSH host key that does not match: one line naming the
host and the endpoint, no traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from quayside.images import containers_docker as engine
from quayside.inventory.image_models import DockerEndpoint, ImageRun
from quayside.inventory.models import Host
from testbed import PROJECT_DIR
from testbed.docker_engine import DockerEngine
from testbed.docker_remote import SshDockerHost, TlsFiles, make_tls_files, start_tcp_relay
from testbed.image_app import FrontNginx
from testbed.registry import RegistryPair
from tests.hosts.test_container_logs_follow import Follower, _say
from tests.hosts.test_image_release_host import (  # noqa: F401  (fixture)
    HOST,
    Pushed,
    _job,
    _release,
    _run,
    app_images,
)


def _write_inventory(path: Path, host: dict[str, Any], run: ImageRun, registry_url: str) -> None:
    """quayside.yaml: the app ``shop`` in ``test`` on the one Docker host ``HOST``."""
    settings = run.model_dump(mode="json", exclude_none=True)
    app = {
        "repo": "https://git.example.invalid/shop.git",
        "deploy_root": str(path.parent / "{host}"),
        "image": {"run": settings},
        "environments": {"test": {"hosts": [HOST], "registry": {"url": registry_url,
                                                                "repository": "shop"}}},
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"hosts": {HOST: host}, "apps": {"shop": app}}))


def _cli_env(tmp_path: Path) -> dict[str, str]:
    environ = dict(os.environ) | {
        "QUAYSIDE_INVENTORY": str(tmp_path / "quayside.yaml"),
        "QUAYSIDE_HOME": str(tmp_path / "home"),
        "COLUMNS": "220",
    }
    environ.pop("QUAYSIDE_TOKEN", None)
    return environ


def quayside(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``quayside ARGS`` in its own process, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args], env=_cli_env(tmp_path),
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _assert_one_line_error(done: subprocess.CompletedProcess[str], *names: str) -> str:
    """The command failed with exit 1 and a message (no traceback) naming ``names``."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    first = done.stderr.strip().splitlines()[0]
    for name in names:
        assert name in first, (name, done.stderr)
    return done.stderr


def _serving_row(done: subprocess.CompletedProcess[str], container: str) -> list[str]:
    """The cells of ``quayside ps``'s row of ``container``."""
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if container in line)
    return [cell.strip() for cell in row.strip().strip("│").split("│")]


@pytest.fixture
def open_front(tmp_path: Path) -> Iterator[FrontNginx]:
    """The nginx in front of the app, in a directory other users can read (the ssh:// host's
    login user reads the upstream file through its executor)."""
    from testbed.require import need_binary

    base = Path(tempfile.mkdtemp(prefix="qs-front-", dir="/tmp"))
    base.chmod(0o755)
    front = FrontNginx(base / "front", need_binary("nginx", "nginx"))
    front.start()
    try:
        yield front
    finally:
        front.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_tcp_endpoint_runs_lists_and_reads_logs_and_when_gone_is_one_line(
    docker_tcp: str,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    image_front: FrontNginx,
    tmp_path: Path,
) -> None:
    client = engine.connect(HOST, DockerEndpoint(url=docker_tcp), timeout_s=60)
    assert client.api.base_url == docker_tcp.replace("tcp://", "http://")
    run = _run(image_front, tmp_path)
    try:
        report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
    finally:
        client.close()
    assert report.ok, report.message  # pulled by digest, started, checked: all over TCP
    assert image_front.get() == "v1"
    host = {"address": "127.0.0.81", "transport": "local", "docker": {"url": docker_tcp}}
    _write_inventory(tmp_path / "quayside.yaml", host, run, registries.source.url)

    row = _serving_row(quayside(tmp_path, "ps", "shop", "test"), "shop-test-v1-a")
    assert row == ["*", HOST, "shop-test-v1-a", "v1", app_images["v1"].digest[:19],
                   row[5], "running"]  # fmt: skip
    logged = quayside(tmp_path, "logs", "shop", "test", "--tail", "5")
    assert logged.returncode == 0, logged.stderr
    assert f"{HOST}: " in logged.stdout and "response:200" in logged.stdout


def test_an_unreachable_tcp_endpoint_is_one_line_naming_host_and_endpoint(
    docker_engine: Any, tmp_path: Path
) -> None:
    socat = shutil.which("socat")
    assert socat is not None
    relay, url = start_tcp_relay(socat, docker_engine.url, tmp_path)
    relay.stop()  # the endpoint existed and went away: nothing listens there now
    run = ImageRun(network="host", slots=("127.0.0.81:1", "127.0.0.81:2"))
    host = {"address": "127.0.0.81", "transport": "local", "docker": {"url": url}}
    _write_inventory(tmp_path / "quayside.yaml", host, run, "http://127.0.0.61:5000")

    for command in (["ps"], ["logs"], ["restart"]):
        stderr = _assert_one_line_error(
            quayside(tmp_path, *command, "shop", "test"), HOST, url, "does not answer"
        )
        assert "Connection refused" in stderr
        assert f"hosts.{HOST}.docker.url" in stderr  # the hint: where to fix it

    with pytest.raises(engine.ContainerError) as caught:
        engine.connect(HOST, DockerEndpoint(url=url), timeout_s=5)
    assert str(caught.value).startswith(f"{HOST}: the Docker engine at {url} does not answer")


def test_an_ssh_endpoint_with_the_inventory_s_key_and_known_hosts(
    docker_ssh_host: SshDockerHost,
    docker_engine: DockerEngine,
    registries: RegistryPair,
    app_images: dict[str, Pushed],  # noqa: F811
    open_front: FrontNginx,
    tmp_path: Path,
) -> None:
    entry = docker_ssh_host.inventory_host()
    login = Host(**entry)
    assert login.docker is not None and login.docker.url.startswith("ssh://quayside-deploy@")
    client = engine.connect(HOST, login.docker, timeout_s=60, login=login)
    run = _run(open_front, tmp_path)
    try:
        assert client.api.base_url == "http+docker://ssh"
        report, _ = _release(client, _job(run, app_images["v1"], registries, "config one"))
        assert report.ok, report.message  # pulled, started, checked: through dial-stdio
        (found,) = engine.app_containers(client, "shop", "test")
        assert (found.name, found.digest) == ("shop-test-v1-a", app_images["v1"].digest)
    finally:
        client.close()
    assert open_front.get() == "v1"

    # the CLI: the engine over ssh://, the upstream file read over SSH by the same login
    _write_inventory(tmp_path / "quayside.yaml", entry, run, registries.source.url)
    row = _serving_row(quayside(tmp_path, "ps", "shop", "test"), "shop-test-v1-a")
    assert row[:4] == ["*", HOST, "shop-test-v1-a", "v1"] and row[-1] == "running"
    logged = quayside(tmp_path, "logs", "shop", "test", "--tail", "5")
    assert logged.returncode == 0, logged.stderr
    assert f"{HOST}: " in logged.stdout and "response:200" in logged.stdout

    # --follow through the SSH channel: a new line arrives, Ctrl-C ends it
    follow = Follower(tmp_path, "--tail", "1")
    try:
        assert follow.wait_for("response:200").startswith(f"{HOST}: ")  # the stream is live
        marker = f"over-ssh-{uuid.uuid4().hex[:8]}"
        _say(docker_engine, marker)
        assert follow.wait_for(marker) == f"{HOST}: {marker}"
        follow.process.send_signal(signal.SIGINT)
        assert follow.process.wait(timeout=20) in (0, 130)
        assert "Traceback" not in follow.stderr()
    finally:
        follow.stop()


def test_an_ssh_endpoint_whose_host_key_changed_is_refused(
    docker_ssh_host: SshDockerHost, tmp_path: Path
) -> None:
    keygen = shutil.which("ssh-keygen")
    assert keygen is not None
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   check=True, capture_output=True)  # fmt: skip
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    h = docker_ssh_host.host
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{h.address}]:{h.port} {other}\n")
    login = Host(**docker_ssh_host.inventory_host(known_hosts=str(known_hosts)))
    assert login.docker is not None

    with pytest.raises(engine.ContainerError) as caught:
        engine.connect(HOST, login.docker, timeout_s=10, login=login)
    message = str(caught.value)
    assert message.startswith(f"{HOST}: the Docker engine at {login.docker.url}: SSH failed")
    assert "does not match" in message and str(known_hosts) in message

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    login = Host(**docker_ssh_host.inventory_host(known_hosts=str(empty)))
    assert login.docker is not None
    with pytest.raises(engine.ContainerError, match="is not in .*empty_known_hosts"):
        engine.connect(HOST, login.docker, timeout_s=10, login=login)


def test_an_ssh_host_whose_engine_does_not_answer_says_why_in_its_words(
    docker_ssh_host: SshDockerHost, tmp_path: Path
) -> None:
    entry = docker_ssh_host.inventory_host()
    run = ImageRun(network="host", slots=("127.0.0.81:1", "127.0.0.81:2"))
    _write_inventory(tmp_path / "quayside.yaml", entry, run, "http://127.0.0.61:5000")
    docker_ssh_host.relay.stop()  # the login user's engine socket answers no more
    try:
        stderr = _assert_one_line_error(
            quayside(tmp_path, "ps", "shop", "test"), HOST, docker_ssh_host.url,
            "docker system dial-stdio",
        )  # fmt: skip
        assert "`docker version` there exited 1" in stderr
        assert str(docker_ssh_host.socket) in stderr  # the docker CLI names its socket
    finally:
        docker_ssh_host.relay.start(docker_ssh_host.socket)


def test_a_tls_tcp_endpoint_with_client_certificates(
    docker_tls: tuple[str, TlsFiles], tmp_path: Path
) -> None:
    url, files = docker_tls
    endpoint = DockerEndpoint(url=url, tls_ca=str(files.ca), tls_cert=str(files.client_cert),
                              tls_key=str(files.client_key))  # fmt: skip
    client = engine.connect(HOST, endpoint, timeout_s=30)
    try:
        assert client.api.base_url == url.replace("tcp://", "https://")
        assert engine.app_containers(client, "shop", "nothing-here") == []
        assert client.version()["ApiVersion"]
    finally:
        client.close()

    # no client certificate: the engine refuses the handshake
    with pytest.raises(engine.ContainerError, match=f"{HOST}: the Docker engine at {url} does"):
        engine.connect(HOST, DockerEndpoint(url=url, tls_ca=str(files.ca)), timeout_s=10)

    # another CA: the engine's certificate is not trusted (verified even without tls_ca)
    other = make_tls_files(shutil.which("openssl") or "openssl", tmp_path / "other", "127.0.0.85")
    for ca in (str(other.ca), None):
        stranger = DockerEndpoint(url=url, tls_ca=ca, tls_cert=str(files.client_cert),
                                  tls_key=str(files.client_key))  # fmt: skip
        with pytest.raises(engine.ContainerError, match="CERTIFICATE_VERIFY_FAILED"):
            engine.connect(HOST, stranger, timeout_s=10)

    half = DockerEndpoint(url=url, tls_cert=str(files.client_cert))
    with pytest.raises(engine.ContainerError, match="tls_cert and tls_key go together"):
        engine.connect(HOST, half, timeout_s=10)
    missing = DockerEndpoint(url=url, tls_ca=str(tmp_path / "nope.pem"))
    with pytest.raises(engine.ContainerError, match="Invalid CA certificate") as caught:
        engine.connect(HOST, missing, timeout_s=10)
    assert caught.value.hint is not None and f"hosts.{HOST}.docker" in caught.value.hint
