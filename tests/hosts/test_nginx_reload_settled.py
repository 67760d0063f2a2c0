"""The nginx reload a config publish (and an image release's traffic switch) runs waits until
the old workers of the reloaded nginx stop accepting: a verify that passed is then never
followed by an answer from the old configuration. Real nginx servers; the old worker is
stopped (SIGSTOP) so the moment it would still answer is held open on purpose."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from quayside.commands import nginx
from testbed.nginx import NginxFleet, NginxServer
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.ssh]


def _workers(server: NginxServer) -> dict[int, str]:
    """The master's children and their titles."""
    master = int(server.pid_file.read_text().strip())
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            found[int(entry.name)] = title
    return found


def _reload(server: NginxServer) -> list[str]:
    return nginx.settled(["pkill", "-HUP", "--pidfile", str(server.pid_file)])


def test_reload_returns_only_after_the_old_worker_stops_accepting(
    nginx_fleet: NginxFleet, clean_ssh_fleet: SshdFleet
) -> None:
    nginx_fleet.start("v1")
    server = nginx_fleet.server(clean_ssh_fleet[0].name)
    (old,) = _workers(server)
    (server.conf / "nginx.conf").write_text(server.config("v2"))
    os.kill(old, signal.SIGSTOP)
    try:
        reload = subprocess.Popen(_reload(server), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_workers(server)) < 2:
            time.sleep(0.02)
        assert len(_workers(server)) == 2, "nginx did not start a new worker"
        time.sleep(0.5)
        assert reload.poll() is None, "returned while the old worker could still accept"
    finally:
        os.kill(old, signal.SIGCONT)
    _, err = reload.communicate(timeout=15)
    assert reload.returncode == 0, err
    assert "still accepting" not in err
    titles = _workers(server)
    assert old not in titles or titles[old].endswith("is shutting down")
    assert [server.get() for _ in range(20)] == ["v2"] * 20


def test_other_nginx_instances_on_the_host_do_not_hold_it_up(
    nginx_fleet: NginxFleet, clean_ssh_fleet: SshdFleet
) -> None:
    nginx_fleet.start("v1")
    first, second = (nginx_fleet.server(h.name) for h in list(clean_ssh_fleet)[:2])
    (other,) = _workers(second)
    os.kill(other, signal.SIGSTOP)  # an unrelated nginx whose worker never changes title
    try:
        (first.conf / "nginx.conf").write_text(first.config("v2"))
        done = subprocess.run(_reload(first), capture_output=True, text=True, timeout=15)
    finally:
        os.kill(other, signal.SIGCONT)
    assert done.returncode == 0 and "still accepting" not in done.stderr, done.stderr
    assert first.get() == "v2" and second.get() == "v1"


def test_a_failed_reload_command_fails_with_its_own_status(nginx_fleet: NginxFleet) -> None:
    done = subprocess.run(
        nginx.settled(["pkill", "-HUP", "--pidfile", str(nginx_fleet.base / "none.pid")]),
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert done.returncode == 1  # pkill's own status, not the wait's
    assert "pidfile not valid" in done.stderr and "still accepting" not in done.stderr
