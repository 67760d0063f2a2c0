"""Real sshd "hosts" on loopback (127.0.0.11, .12, ...), each with its own config, host key,
port and deploy root, sharing one client key and one known_hosts file.

The core (:class:`SshdFleet`, :class:`SshdHost`) needs no pytest, so ``bench/`` can use it:

    fleet = SshdFleet(Path("/tmp/fleet"), count=20)
    try:
        ...  # fleet.hosts[i].address / .port / .user / .key_file / .known_hosts / .root
    finally:
        fleet.close()

The pytest fixtures at the bottom (``ssh_fleet``, ``clean_ssh_fleet``) wrap it. Ports come from
binding port 0 and directories from ``tmp_path_factory``, so pytest-xdist workers never collide.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SSHD_PACKAGE = "openssh-server"
KEYGEN_PACKAGE = "openssh-client"
SBIN_PATH = "/usr/sbin:/sbin:/usr/local/sbin"


def find_binary(name: str) -> str | None:
    """Path of executable ``name`` on PATH or in the sbin directories."""
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def free_port(address: str) -> int:
    """A TCP port that is free on ``address`` right now (bind to port 0, read it, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def generate_key(keygen: str, path: Path, comment: str) -> str:
    """Create an ed25519 key pair at ``path`` (no passphrase); return the public key line."""
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (sshd forks a process per connection)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." - comm may contain spaces and parentheses.
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def closed_to_others(path: Path) -> Path | None:
    """The first directory on the way to ``path`` (itself included) that other users cannot
    enter (no o+x), or None."""
    for directory in [*reversed(path.resolve().parents), path.resolve()]:
        if not directory.stat().st_mode & 0o001:
            return directory
    return None


class SshdError(RuntimeError):
    """An sshd host could not be set up or started."""


#: the login of :func:`ensure_login_user`: a deploy account with a plain POSIX shell, as deploy
#: targets have. root's login shell on a developer machine may read an rc file per command
#: (here ~/.bashrc runs ``pyenv init``: ~0.12 s of CPU for every SSH command).
DEPLOY_USER = "quayside-deploy"


def ensure_login_user(name: str = DEPLOY_USER) -> tuple[int, int]:
    """Create the system user ``name`` (home /var/lib/<name>, shell /bin/sh) unless it
    exists; return its (uid, gid).

    Raises:
        SshdError: it does not exist and cannot be created (not root, or no useradd).
    """
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = find_binary("useradd")
        if useradd is None or os.geteuid() != 0:
            raise SshdError(
                f"user {name} is missing and only root can create it (useradd)"
            ) from None
        # password "*": no password login, but not a locked account (sshd refuses those)
        subprocess.run(
            [useradd, "--system", "--create-home", "--home-dir", f"/var/lib/{name}"]
            + ["--shell", "/bin/sh", "--password", "*", name],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


@dataclass
class SshdHost:
    """One sshd "host": its own address, port, host key, config and deploy root."""

    name: str
    address: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    root: Path
    dir: Path
    config: Path
    host_key: Path
    host_public_key: str
    sshd: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_file(self) -> Path:
        """sshd's own log (``-e`` sends it to stderr, which goes here)."""
        return self.dir / "sshd.log"

    @property
    def running(self) -> bool:
        """Whether this host's sshd process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def known_hosts_line(self) -> str:
        """This host's line for a known_hosts file."""
        return f"[{self.address}]:{self.port} {self.host_public_key}"

    def start(self, timeout: float = 10) -> None:
        """Start sshd (no-op if running) and wait until it answers with an SSH banner.

        Raises:
            SshdError: sshd exited or did not answer within ``timeout`` seconds.
        """
        if self.running:
            return
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SshdError(
                    f"{self.name}: sshd exited with {self.process.returncode}: "
                    f"{self.log_file.read_text(errors='replace').strip()[-2000:]}"
                )
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return
                    last_error = "no SSH banner"
            except OSError as e:
                last_error = str(e)
            time.sleep(0.05)
        self.stop()
        raise SshdError(f"{self.name}: sshd on {self.address}:{self.port} not ready: {last_error}")

    def stop(self) -> None:
        """Kill sshd and every connection it serves, as if the host died. No-op if stopped."""
        if self.process is None:
            return
        if self.process.poll() is None:
            victims = [*descendants(self.process.pid), self.process.pid]
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait()
        self.process = None

    def reset_root(self) -> None:
        """Empty the deploy root (the directory itself stays). A deploy's background copy
        of its release (``.quayside-next-*``) may still be writing: tried again briefly."""
        for attempt in range(50):
            try:
                for entry in self.root.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                return
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.1)


def host_config(host: SshdHost, authorized_keys: Path) -> str:
    """sshd_config text for ``host``."""
    return "\n".join(
        [
            f"ListenAddress {host.address}",
            f"Port {host.port}",
            f"HostKey {host.host_key}",
            f"PidFile {host.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "UseDNS no",
            "MaxStartups 200",
            "MaxSessions 100",
            "Subsystem sftp internal-sftp",
            # bash reads the login user's ~/.bashrc for every ssh command; where that runs
            # `pyenv init -` (this machine's root), a rehash killed mid-way (a fleet stopped,
            # a test timed out) leaves pyenv's lock file and every later command waited 60 s
            # for it: give up on the rehash after 1 s instead (the commands never need it)
            "SetEnv PYENV_REHASH_TIMEOUT=1",
            "LogLevel ERROR",
            "",
        ]
    )


class SshdFleet:
    """``count`` sshd hosts named web-1, web-2, ... on consecutive loopback addresses.

    Args:
        base_dir: Where keys, configs, logs and deploy roots go (created if missing).
        count: How many hosts.
        first_address: Address of web-1; the others follow (127.0.0.11, .12, ...).
        sshd: Path of the sshd binary (default: found on PATH or in sbin).
        keygen: Path of ssh-keygen (default: found on PATH).
        login: the user the hosts are logged in as (default: the current user); a name
            other than the current user's is created by :func:`ensure_login_user` and owns
            every deploy root.

    Raises:
        SshdError: A binary is missing or a host did not start.
    """

    def __init__(
        self,
        base_dir: Path,
        count: int,
        first_address: str = "127.0.0.11",
        *,
        sshd: str | None = None,
        keygen: str | None = None,
        login: str | None = None,
    ) -> None:
        sshd = sshd or find_binary("sshd")
        keygen = keygen or find_binary("ssh-keygen")
        if sshd is None or keygen is None:
            raise SshdError(f"sshd and ssh-keygen are needed: install {SSHD_PACKAGE}")
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.user = login or getpass.getuser()
        owner = ensure_login_user(self.user) if self.user != getpass.getuser() else None
        if owner is not None:
            blocked = closed_to_others(self.base_dir)
            if blocked is not None:
                raise SshdError(
                    f"{self.user} cannot reach {self.base_dir} (where its authorized_keys "
                    f"and deploy roots are): {blocked} is closed to other users; chmod o+x it"
                )
        self.key_file = self.base_dir / "client_ed25519"
        self.known_hosts = self.base_dir / "known_hosts"
        self.authorized_keys = self.base_dir / "authorized_keys"
        self.hosts: list[SshdHost] = []

        self.client_public_key = generate_key(keygen, self.key_file, "quayside-test-client")
        self.authorized_keys.write_text(self.client_public_key + "\n")
        start = ipaddress.IPv4Address(first_address)
        for i in range(count):
            name = f"web-{i + 1}"
            address = str(start + i)
            host_dir = self.base_dir / name
            (host_dir / "root").mkdir(parents=True, exist_ok=True)
            if owner is not None:
                os.chown(host_dir / "root", *owner)
            host_key = host_dir / "ssh_host_ed25519_key"
            host = SshdHost(
                name=name,
                address=address,
                port=free_port(address),
                user=self.user,
                key_file=self.key_file,
                known_hosts=self.known_hosts,
                root=host_dir / "root",
                dir=host_dir,
                config=host_dir / "sshd_config",
                host_key=host_key,
                host_public_key=" ".join(generate_key(keygen, host_key, name).split()[:2]),
                sshd=sshd,
            )
            host.config.write_text(host_config(host, self.authorized_keys))
            self.hosts.append(host)
        self.known_hosts.write_text("".join(h.known_hosts_line + "\n" for h in self.hosts))
        try:
            for host in self.hosts:
                host.start()
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[SshdHost]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, index: int) -> SshdHost:
        return self.hosts[index]

    def host(self, name: str) -> SshdHost:
        """The host called ``name``."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def close(self) -> None:
        """Stop every host's sshd."""
        for host in self.hosts:
            host.stop()

    def __enter__(self) -> SshdFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- pytest fixtures (only when pytest is importable: bench/ may run without it) -------------

try:
    import pytest
except ModuleNotFoundError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def ssh_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
        """Three sshd hosts (web-1..web-3) for the whole session (per xdist worker)."""
        # Imported here: importing a sibling plugin at module level defeats its assert rewriting.
        from testbed.require import need_binary

        sshd = need_binary("sshd", SSHD_PACKAGE)
        keygen = need_binary("ssh-keygen", KEYGEN_PACKAGE)
        fleet = SshdFleet(tmp_path_factory.mktemp("sshd"), 3, sshd=sshd, keygen=keygen)
        try:
            yield fleet
        finally:
            fleet.close()

    @pytest.fixture
    def clean_ssh_fleet(ssh_fleet: SshdFleet) -> SshdFleet:
        """The session fleet with every host running and every deploy root empty."""
        for host in ssh_fleet:
            host.start()
            host.reset_root()
        return ssh_fleet
