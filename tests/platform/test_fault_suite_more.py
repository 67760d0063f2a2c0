"""More of issue 15's fault suite, on real sshd hosts and the session platform: a hung artifact
store cannot delay the switch-back of a failed release; the CLI warns about a release its full
store could not keep; a host whose ``current`` was made by hand is refused by name and left
alone; a fleet a killed run left split converges on the next deploy or rollback. After each:
every host on a complete release, and the ledger says what the hosts serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from quayside.deploy.errors import ThresholdExceeded
from quayside.flows.git_deploy import git_deploy
from quayside.flows.rollback import GIT_KINDS
from quayside.inventory import load_inventory
from quayside.ledger.locks import current_lock
from quayside.ledger.models import HostStatus, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import (
    current_release,
    get_release,
    list_releases,
    releases_of_run,
)
from quayside.runs import read_run, start_run
from quayside.settings import load_settings
from quayside.stack.reconcile_sweep import sweep
from testbed.platform import PROJECT_DIR, Platform
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    assert_complete,
    current_id,
    ledger,
    release_ids,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.require import missing
from testbed.s3 import MotoS3Server, moto_available
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect, pytest.mark.ssh]

NOT_RESTORABLE = "not restorable: the artifact store failed"
HAND_MADE = "current is a directory, not a symlink"


def latest(app: str = "shop", env: str = "test") -> Any:
    return list_releases(ledger(), app, env, limit=1)[0]


def all_at(fleet: SshdFleet, rid: str) -> None:
    for h in fleet:
        assert current_id(h) == rid, h.name
        assert_complete(h)


def ledger_matches(fleet: SshdFleet) -> None:
    """The ledger's current git release is what every host serves, each host's row
    succeeded."""
    now = current_release(ledger(), "shop", "test", kinds=GIT_KINDS)
    assert now is not None
    rid = (now.details or {})["release_id"]
    all_at(fleet, rid)
    assert {h.host: h.status for h in now.hosts} == {h.name: HostStatus.succeeded for h in fleet}


def wait_for(check: Any, what: str, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def quayside(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `quayside` CLI in its own process against the session platform."""
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env={**platform.env, "COLUMNS": "200"},
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


# -- F: switching back comes first ---------------------------------------------------------------


@pytest.fixture
def s3_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3Server]:
    """An S3 endpoint of this test's own (its process may be stopped), the deploy's store."""
    if not moto_available():
        missing("moto S3 server", "run `make test`, which installs the test dependencies")
    server = MotoS3Server(tmp_path / "moto")
    endpoint = server.start()
    monkeypatch.setenv("QUAYSIDE_ARTIFACTS_URL", "s3://faults/payloads")
    monkeypatch.setenv("QUAYSIDE_S3_ENDPOINT_URL", endpoint.endpoint_url)
    monkeypatch.setenv("QUAYSIDE_S3_CREATE_BUCKET", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", endpoint.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", endpoint.secret_access_key)
    monkeypatch.setenv("AWS_REGION", endpoint.region)
    try:
        yield server
    finally:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP): state T in /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] in {"T", "t"}


def test_a_failed_release_switches_back_while_the_artifact_store_hangs(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    s3_store: MotoS3Server,
) -> None:
    """v2 (a 24 MiB payload) fails its health check on one host with threshold 0 while the
    S3 endpoint is stopped (SIGSTOP: it accepts connections and never answers): every host is
    back on v1 and the release recorded ``failed`` before the store answers anything."""
    fleet = clean_ssh_fleet
    health = {"command": '! test -e "$QUAYSIDE_DEPLOY_ROOT/sick"', "retries": 0}
    write_inventory(
        platform_inventory, fleet, repo, app={"health_check": health}, env={"failure_threshold": 0}
    )
    first = run_flow(git_deploy, "shop", "test", "v1")
    rid1 = first["release_id"]
    assert latest().artifact_location.startswith("s3://faults/payloads/")  # kept in S3
    repo.commit({"big.bin": os.urandom(24 * 1024 * 1024)}, tag="big")
    (fleet[1].root / "sick").touch()
    assert s3_store.process is not None
    pid = s3_store.process.pid
    os.kill(pid, signal.SIGSTOP)
    outcome: list[BaseException | dict[str, Any]] = []

    def deploy() -> None:
        try:
            outcome.append(run_flow(git_deploy, "shop", "test", "big"))
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            outcome.append(e)

    runner = threading.Thread(target=deploy, daemon=True)
    runner.start()
    runner.join(240)
    assert stopped(pid), "the store was woken up before the deploy ended"
    assert not runner.is_alive(), "the failed deploy waited for the stopped artifact store"
    (error,) = outcome
    assert isinstance(error, ThresholdExceeded), error
    assert "web-2 [health]" in str(error)
    all_at(fleet, rid1)
    row = latest()
    assert row.version == "big" and row.status == ReleaseStatus.failed
    assert row.artifact_location is None  # nothing was kept for it, nothing says so
    statuses = {h.host: h.status for h in row.hosts}
    assert statuses["web-2"] == HostStatus.failed
    assert {statuses["web-1"], statuses["web-3"]} == {HostStatus.rolled_back}
    assert current_lock(ledger(), "shop", "test") is None
    os.kill(pid, signal.SIGCONT)


# -- G: the CLI warns about a release the store could not keep -----------------------------------


@pytest.fixture
def full_artifact_store(platform: Platform) -> Iterator[Path]:
    """The platform's own artifact directory (the default store its worker's runs use) on a
    1 MiB tmpfs for the test."""
    store = load_settings().artifacts_dir
    store.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(store)], check=True)
    try:
        yield store
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


def test_the_cli_warns_that_a_release_its_full_store_could_not_keep_is_not_restorable(
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    full_artifact_store: Path,
) -> None:
    """`quayside deploy` of a 3 MiB payload with the store on a full disk: the deploy stands
    (exit 0) and the CLI prints the not-restorable warning the ledger recorded."""
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    repo.commit({"big.bin": os.urandom(3 * 1024 * 1024)}, tag="big")
    done = quayside(platform, "deploy", "shop", "test", "big")
    out = done.stdout
    assert done.returncode == 0, out
    row = latest()
    assert row.version == "big" and row.status == ReleaseStatus.succeeded, out
    assert row.artifact_location is None and row.details["restorable"] is False
    all_at(fleet, row.details["release_id"])
    warning = next((x for x in out.splitlines() if x.startswith("warning:")), None)
    assert warning is not None, out
    assert warning.startswith(f"warning: {NOT_RESTORABLE}"), out
    assert "No space left" in " ".join(out.split()), out


# -- H: a hand-made current ----------------------------------------------------------------------


def hand_made_current(host: Any) -> Path:
    """``current`` on ``host`` replaced by a plain directory with a file in it, as by hand."""
    link = host.root / "current"
    link.unlink()
    link.mkdir()
    (link / "index.php").write_text("<?php echo 'by hand';\n")
    return link


def test_a_hand_made_current_is_refused_by_name_and_left_alone_threshold_0(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """Through the CLI and the worker, threshold 0: web-2 refused with the cause and the way
    out, untouched; its row says why; the others go back to v1; the CLI names web-2."""
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo, env={"failure_threshold": 0})
    done = quayside(platform, "deploy", "shop", "test", "v1")
    assert done.returncode == 0, done.stdout
    rid1 = current_id(fleet[0])
    assert rid1 is not None
    by_hand = hand_made_current(fleet[1])
    before = release_ids(fleet[1])

    done = quayside(platform, "deploy", "shop", "test", "v2")
    out = done.stdout
    assert done.returncode == 1, out
    error = next(x for x in out.splitlines() if x.startswith("error: "))
    assert "web-2" in error, out  # the one line that ends the CLI names the host
    why = next((x for x in out.splitlines() if x.startswith("web-2: ")), "")
    assert HAND_MADE in why and "mv current current.by-hand" in why, out  # and why, below
    # untouched: still the hand-made directory, nothing added beside it
    assert by_hand.is_dir() and not by_hand.is_symlink()
    assert (by_hand / "index.php").read_text() == "<?php echo 'by hand';\n"
    assert release_ids(fleet[1]) == before
    assert not list(fleet[1].root.glob(".current.tmp*"))
    for h in (fleet[0], fleet[2]):  # threshold 0: the others went back
        assert current_id(h) == rid1
        assert_complete(h)
    row = latest()
    assert row.version == "v2" and row.status == ReleaseStatus.failed
    hosts = {h.host: h for h in row.hosts}
    assert hosts["web-2"].status == HostStatus.failed
    assert HAND_MADE in (hosts["web-2"].message or ""), hosts["web-2"].message


def test_a_hand_made_current_below_the_threshold_leaves_the_others_on_the_new_release(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    """Threshold 1: the other hosts take v2 and the release succeeds with web-2 failed."""
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo, env={"failure_threshold": 1})
    run_flow(git_deploy, "shop", "test", "v1")
    by_hand = hand_made_current(fleet[1])
    out = run_flow(git_deploy, "shop", "test", "v2")
    assert out["failed"] == ["web-2"]
    assert by_hand.is_dir() and not by_hand.is_symlink()
    for h in (fleet[0], fleet[2]):
        assert current_id(h) == out["release_id"]
        assert_complete(h)
    row = latest()
    assert row.status == ReleaseStatus.succeeded
    message = {h.host: h.message for h in row.hosts}["web-2"] or ""
    assert HAND_MADE in message and "mv current current.by-hand" in message, message


# -- I: a split fleet converges ------------------------------------------------------------------


def run_processes(run_id: str) -> list[int]:
    """This machine's processes of flow run ``run_id`` (the worker puts the id in their
    environment)."""
    wanted = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def split_fleet(
    platform_inventory: Path, fleet: SshdFleet, repo: Repo, ref: str, before: str
) -> Any:
    """A real split: ``ref`` deployed one host per batch through the worker, its run SIGKILLed
    while web-3's pre-switch hook runs - web-1 and web-2 serve ``ref``, web-3 still
    ``before`` (a release directory). Returns the dead run's release, reconciled
    (``interrupted``, what each host serves)."""
    marker = fleet[2].root / "in-hook"
    # web-3 waits in its pre-switch hook until the test removes the marker (after the kill)
    hook = (
        'if [ "$QUAYSIDE_HOST" = web-3 ]; then touch "$QUAYSIDE_DEPLOY_ROOT/in-hook"; '
        'while [ -e "$QUAYSIDE_DEPLOY_ROOT/in-hook" ]; do sleep 0.2; done; fi'
    )
    write_inventory(
        platform_inventory, fleet, repo, app={"hooks": {"pre_switch": [hook]}}, env={"batch": 1}
    )
    handle = start_run(
        "git-deploy", {"app": "shop", "env": "test", "ref": ref, "requested_by": "dan"}
    )
    try:
        wait_for(marker.exists, "web-3's pre-switch hook", 180)
    finally:
        for pid in run_processes(handle.id):  # an OOM kill of the run's process
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    marker.unlink()
    wait_for(lambda: read_run(handle.id).final, "Prefect to see the run end")
    wait_for(lambda: not run_processes(handle.id), "every process of the run to end", 30)
    write_inventory(platform_inventory, fleet, repo)
    engine = ledger()
    (row,) = releases_of_run(engine, handle.id)
    if get_release(engine, row.id).status == ReleaseStatus.running:  # no crash hook ran
        sweep(engine, load_inventory(platform_inventory), started_at=datetime.now(UTC))
    row = get_release(engine, row.id)
    new = (row.details or {})["release_id"]
    assert row.status == ReleaseStatus.interrupted
    assert [current_id(h) for h in fleet] == [new, new, before]
    assert {h.host: h.serves for h in row.hosts} == {h.name: current_id(h) for h in fleet}
    for h in fleet:
        assert_complete(h)
    assert current_lock(engine, "shop", "test") is None  # no lock held by the dead run
    return row


def test_a_deploy_converges_a_split_fleet(
    run_flow: Any, platform_inventory: Path, clean_ssh_fleet: SshdFleet, repo: Repo
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    split_fleet(platform_inventory, fleet, repo, "v2", rid1)
    out = run_flow(git_deploy, "shop", "test", "v3")
    all_at(fleet, out["release_id"])
    ledger_matches(fleet)
    assert latest().version == "v3"


def test_rollback_to_a_version_converges_a_split_fleet(
    platform: Platform,
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
) -> None:
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    rid1 = run_flow(git_deploy, "shop", "test", "v1")["release_id"]
    rid3 = run_flow(git_deploy, "shop", "test", "v3")["release_id"]
    split_fleet(platform_inventory, fleet, repo, "v2", rid3)
    done = quayside(platform, "rollback", "shop", "test", "--to", "v1")
    assert done.returncode == 0, done.stdout
    all_at(fleet, rid1)
    ledger_matches(fleet)
    row = latest()
    assert row.kind == ReleaseKind.rollback and row.version == "v1"


def test_rollback_without_to_after_an_interrupted_release_restores_what_served_before_it(
    platform: Platform,
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
) -> None:
    """v1, then v3, then v2 interrupted with two hosts on it: `quayside rollback` (no --to)
    undoes the interrupted v2 - every host back on v3, the release that served before it -
    not v3 undone to v1."""
    fleet = clean_ssh_fleet
    write_inventory(platform_inventory, fleet, repo)
    run_flow(git_deploy, "shop", "test", "v1")
    rid3 = run_flow(git_deploy, "shop", "test", "v3")["release_id"]
    dead = split_fleet(platform_inventory, fleet, repo, "v2", rid3)
    done = quayside(platform, "rollback", "shop", "test")
    assert done.returncode == 0, done.stdout
    all_at(fleet, rid3)
    ledger_matches(fleet)
    row = latest()
    assert row.kind == ReleaseKind.rollback and row.version == "v3"
    assert row.rollback_of_id == dead.id
