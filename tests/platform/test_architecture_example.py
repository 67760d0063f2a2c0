"""The example release flow of docs/architecture.md, exactly as printed there, on real sshd
hosts against the session platform: it stamps every host, finishes its ledger release under
its own kind (which `quayside rollback` refuses rather than starting config-publish), records a
re-run as "no change" (cancelled, not succeeded), and a lock held by another run ends it
"not run"."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prefect.exceptions import CancelledRun

from quayside.errors import InputError
from quayside.ledger.locks import acquire, release
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases
from quayside.release.rollback_kind import rollback_run
from testbed import PROJECT_DIR
from testbed.release_fixtures import (  # noqa: F401  (fixtures)
    Repo,
    ledger,
    repo_fixture,
    run_flow_fixture,
    write_inventory,
)
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]

DOC = PROJECT_DIR / "docs" / "architecture.md"


def example_module(tmp_path: Path) -> ModuleType:
    """The doc's one Python block, imported as a module from a file."""
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    path = tmp_path / "stamp_example.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("stamp_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stamp_example"] = module
    spec.loader.exec_module(module)
    return module


def test_the_documented_example_flow_runs(
    run_flow: Any,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    repo: Repo,
    tmp_path: Path,
) -> None:
    fleet = clean_ssh_fleet
    stamp = example_module(tmp_path).stamp
    write_inventory(platform_inventory, fleet, repo)
    engine = ledger()
    for h in fleet:
        h.root.mkdir(parents=True, exist_ok=True)

    first = run_flow(stamp, "shop", "test", "s1", requested_by="erin")
    assert first["failed"] == [] and set(first["hosts"].values()) == {"succeeded"}
    assert all((h.root / "STAMP").read_text() == "s1" for h in fleet)
    row = get_release(engine, first["release"])
    assert row.kind == ReleaseKind.hello and row.status == ReleaseStatus.succeeded
    assert first["result"] == "succeeded"
    with pytest.raises(InputError, match="the newest release is a hello release"):
        rollback_run(engine, "shop", "test", to=None, kind=None, requested_by="erin")
    assert sorted(h.host for h in row.hosts) == sorted(h.name for h in fleet)

    again = run_flow(stamp, "shop", "test", "s1")
    assert set(again["hosts"].values()) == {"no_change"} and again["result"] == "no change"
    unchanged = get_release(engine, again["release"])
    assert unchanged.status == ReleaseStatus.cancelled
    assert (unchanged.summary or {})["result"] == "no change"

    acquire(engine, "shop", "test", "carol (flow run x)", flow_run_id="other", version="v0")
    try:
        with pytest.raises(CancelledRun, match="not run: shop/test is locked by carol"):
            run_flow(stamp, "shop", "test", "s2")
    finally:
        release(engine, "shop", "test", flow_run_id="other")
    refused = list_releases(engine, "shop", "test", limit=1)[0]
    assert refused.status == ReleaseStatus.cancelled
    assert (refused.summary or {})["result"] == "not run"
    assert all((h.root / "STAMP").read_text() == "s1" for h in fleet)
