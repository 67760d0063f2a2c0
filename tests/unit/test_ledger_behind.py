"""The busy-retry budget is read in one place (engine option, then the environment, then the
default), and a release whose ledger fell behind its hosts says in one line which hosts
serve it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from quayside.errors import LedgerError
from quayside.ledger.busy import BUDGET_ENV, BUSY_BUDGET_S, busy_budget_s, with_budget
from quayside.release.host_report import HostReport
from quayside.release.ledger_behind import LedgerBehindHosts


def test_the_budget_is_the_engines_then_the_environments_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = create_engine("sqlite://")
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert busy_budget_s(engine) == BUSY_BUDGET_S == 30.0
    monkeypatch.setenv(BUDGET_ENV, "2.5")
    assert busy_budget_s(engine) == 2.5
    assert busy_budget_s(with_budget(engine, 7)) == 7.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(LedgerError, match=f"{BUDGET_ENV}='{bad}' is not a number"):
            busy_budget_s(engine)


def report(host: str, switched: bool) -> HostReport:
    return HostReport(host, "succeeded" if switched else "failed", "switch", switched=switched)


def test_the_line_names_the_hosts_that_serve_the_release_and_those_that_do_not() -> None:
    cause = LedgerError("the ledger sqlite:///l.db stayed busy: record_host_outcomes was tried")
    error = LedgerBehindHosts(
        [report("web-1", True), report("web-2", True), report("web-3", False)],
        version="v2",
        app="shop",
        env="prod",
        cause=cause,
    )
    assert str(error) == (
        "web-1, web-2 serve v2 of shop/prod (web-3 not), but the ledger could not record it: "
        "the ledger sqlite:///l.db stayed busy: record_host_outcomes was tried"
    )
    assert error.serving == ("web-1", "web-2") and error.not_serving == ("web-3",)
    assert (
        error.hint and "`quayside up`" in error.hint and "quayside releases shop prod" in error.hint
    )
    nothing = LedgerBehindHosts(
        [report("web-1", False)], version="v2", app="shop", env="prod", cause=cause
    )
    assert str(nothing).startswith("none of web-1 serves v2 of shop/prod, but")
    # a host that had the release already serves it, though it did not switch
    had_it = HostReport("web-2", "no_change", "plan")
    rerun = LedgerBehindHosts(
        [had_it, report("web-1", False)], version="v2", app="shop", env="prod", cause=cause
    )
    assert str(rerun).startswith("web-2 serves v2 of shop/prod (web-1 not), but")
    many = LedgerBehindHosts(
        [report(f"web-{i}", True) for i in range(12)], version="v2", app="a", env="b", cause=cause
    )
    assert str(many).startswith("web-0, web-1, web-2, web-3, web-4, web-5, web-6, web-7, web-8, ")
    assert "..., (12 hosts) serve" not in str(many) and "... (12 hosts) serve v2" in str(many)
    assert "\n" not in str(many)
