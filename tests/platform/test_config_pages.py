"""The config center's web pages in headless Chromium, against a real gateway (uvicorn on
loopback, SQLite ledger): log in with an API token (a wrong one is refused) and get an
HttpOnly, SameSite=Strict session cookie that is not the token; browse the tree, edit and
save; a stale save is refused with both versions shown and the text kept, then merged and
saved; history, a side-by-side diff, restore; a new file with a traversal name is refused;
content that is HTML stays text (no script runs); a REPORTER sees everything read-only and
the POSTs refuse them (403); logging out ends the session.

On the session platform (``quayside up``: Prefect, its worker, the gateway), with real dnsmasq
servers behind real sshd hosts: a file created in the browser is published with the Publish
button, whose page links to the Prefect run the worker runs; the servers then answer the new
records and the tree shows the version published.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
import yaml

from quayside.auth import service
from quayside.config import items
from quayside.config.address import ItemAddress
from quayside.config.sql_store import SqlConfigStore
from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig
from quayside.gateway.web_cookies import SESSION_COOKIE
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.submissions import submission_of_run
from quayside.runs import read_run
from quayside.settings import Settings
from testbed.dnsmasq import DnsmasqFleet
from testbed.platform import Platform, free_port
from testbed.release_fixtures import host_entries
from testbed.require import missing, need_binary
from testbed.sshd import SshdFleet
from tests.platform.test_ui import CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = [pytest.mark.xdist_group("platform")]

HOSTS = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq_hosts")
INVENTORY = """\
apps:
  DNS:
    space: ops
    environments:
      release:
        config:
          dnsmasq: {kind: dnsmasq, dir: /etc/dnsmasq.d, main_file: dnsmasq.conf}
"""
V1 = "10.0.0.1 ns1\n10.0.0.2 ns2\n"


@dataclass
class Site:
    url: str
    ledger_url: str
    tokens: dict[str, str]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A gateway serving the pages, with a DEVELOPER pair and a REPORTER on app DNS; no
    Prefect answers it (PREFECT_API_URL, which the session platform sets for in-process
    clients, names a port nothing listens on)."""
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "quayside.yaml").write_text(INVENTORY)
    ledger_url = f"sqlite:///{home / 'ledger.db'}"
    migrate(ledger_url)
    engine = make_engine(ledger_url)
    roles = {"alice": "DEVELOPER", "bob": "DEVELOPER", "viewer": "REPORTER"}
    for name, role in roles.items():
        service.create_user(engine, name)
        service.grant_role(engine, name, role, space="ops")
    tokens = {name: service.create_token(engine, name) for name in roles}
    items.save(SqlConfigStore(engine), HOSTS, V1, author="alice", base_version=0, message="first")
    engine.dispose()
    settings = Settings(
        home=home,
        database_url=ledger_url,
        inventory_path=home / "quayside.yaml",
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        prefect_host="127.0.0.1",
        prefect_port=free_port(),
    )
    app = create_app(settings, GatewayConfig())
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.gateway_port, log_level="warning",
            access_log=False,
        )
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "gateway did not start"
        time.sleep(0.05)
    try:
        yield Site(settings.gateway_url, ledger_url, tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.state.context.dispose()


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = need_binary("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright", "run `make test`, which syncs the dev dependencies")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    return context, page


def log_in(page: Page, site: Site, user: str) -> None:
    page.goto(f"{site.url}/config/")
    page.wait_for_url(f"{site.url}/config/login?next=%2Fconfig%2F")
    page.fill("#token", site.tokens[user])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.url}/config/")


def editor_text(page: Page) -> str:
    return page.locator("textarea#content").input_value()


def test_edit_compare_restore_and_a_stale_save_in_the_browser(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    alice_ctx, alice = new_page(browser)
    bob_ctx, bob = new_page(browser)

    # a wrong token is refused; the right one gives a session cookie that is not the token
    alice.goto(f"{site.url}/config/")
    alice.wait_for_url("**/config/login?next=*")
    alice.fill("#token", "qs_0123456789ab_" + "0" * 64)
    alice.get_by_role("button", name="Log in").click()
    assert "token not accepted: unknown token" in alice.locator("#error").inner_text()
    alice.screenshot(path=str(tmp_path / "login-refused.png"))
    alice.fill("#token", site.tokens["alice"])
    alice.get_by_role("button", name="Log in").click()
    alice.wait_for_url(f"{site.url}/config/")
    (cookie,) = [c for c in alice_ctx.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/config"
    assert cookie["value"] != site.tokens["alice"]
    assert site.tokens["alice"] not in alice.content()
    assert alice.evaluate("document.cookie") == ""  # no script can read it

    # the tree: project, environment, service, file with its state
    tree = alice.locator("#env-DNS-release").inner_text()
    assert "dnsmasq" in tree and "dnsmasq_hosts" in tree and "never published" in tree
    alice.screenshot(path=str(tmp_path / "tree.png"))
    alice.get_by_role("link", name="dnsmasq_hosts").click()
    alice.wait_for_url(f"{site.url}/config/items/{HOSTS}")
    assert editor_text(alice) == V1

    # bob saves first, from the same version
    log_in(bob, site, "bob")
    bob.goto(f"{site.url}/config/items/{HOSTS}")
    bob.fill("textarea#content", V1 + "10.0.0.3 ns3\n")
    bob.fill("#message", "add ns3")
    bob.get_by_role("button", name="Save draft").click()
    assert bob.locator("#saved").inner_text() == "Saved version 2."

    # alice's save started from version 1: refused, both shown, her text kept
    mine = V1.replace("10.0.0.2", "10.0.0.22")
    alice.fill("textarea#content", mine)
    alice.get_by_role("button", name="Save draft").click()
    alice.get_by_role("heading", name="Not saved: someone saved first").wait_for()
    error = alice.locator("#error").inner_text()
    assert "stale save refused, nothing was saved" in error
    assert "you started from version 1, but the latest is version 2 by bob" in error
    table = alice.locator("table.diff")
    assert "v2 (latest, by bob)" in table.inner_text() and "your refused save" in table.inner_text()
    assert alice.locator("tr.changed td.left").first.inner_text() == "10.0.0.2 ns2"
    assert alice.locator("tr.changed td.right").first.inner_text() == "10.0.0.22 ns2"
    assert alice.locator("tr.removed td.left").first.inner_text() == "10.0.0.3 ns3"
    assert editor_text(alice) == mine
    alice.screenshot(path=str(tmp_path / "stale.png"), full_page=True)
    merged = mine + "10.0.0.3 ns3\n"
    alice.fill("textarea#content", merged)
    alice.get_by_role("button", name="Save over v2").click()
    assert alice.locator("#saved").inner_text() == "Saved version 3."
    assert editor_text(alice) == merged

    # history and a side-by-side diff of any two versions
    alice.get_by_role("link", name="History").click()
    rows = alice.locator("table.history tbody tr")
    assert rows.count() == 3
    assert (
        "bob" in alice.locator("#v2").inner_text()
        and "add ns3" in alice.locator("#v2").inner_text()
    )
    alice.select_option("#before", "1")
    alice.select_option("#after", "3")
    alice.get_by_role("button", name="Compare").click()
    alice.get_by_role("heading", name="dnsmasq_hosts: v1 → v3").wait_for()
    assert alice.locator("tr.changed td.right").first.inner_text() == "10.0.0.22 ns2"
    assert alice.locator("tr.added td.right").first.inner_text() == "10.0.0.3 ns3"
    alice.screenshot(path=str(tmp_path / "diff.png"), full_page=True)

    # restore version 1 as a new draft
    alice.get_by_role("link", name="history").click()
    alice.get_by_role("button", name="Restore v1 as a new draft").click()
    assert alice.locator("#saved").inner_text() == "Saved version 4."
    assert editor_text(alice) == V1
    assert "restored from v1" in alice.locator("p.meta").first.inner_text()

    # HTML in a file is text on every page: no script runs
    evil = '<script>alert("xss")</script>\n<img src=x onerror="alert(1)">\n'
    bob.goto(f"{site.url}/config/items/{HOSTS}")
    bob.fill("textarea#content", evil)
    bob.fill("#message", "<b>bold</b>")
    bob.get_by_role("button", name="Save draft").click()
    assert bob.locator("#saved").inner_text() == "Saved version 5."
    assert editor_text(bob) == evil
    bob.goto(f"{site.url}/config/history/{HOSTS}")
    assert "<b>bold</b>" in bob.locator("#v5").inner_text()
    bob.goto(f"{site.url}/config/diff/{HOSTS}?before=4&after=5")
    assert bob.locator("tr.changed td.right").first.inner_text() == '<script>alert("xss")</script>'
    assert bob.dialogs == []  # type: ignore[attr-defined]

    # a new file: a traversal name is refused with the form kept, then a good one is created
    alice.goto(f"{site.url}/config/")
    alice.get_by_role("link", name="New file").click()
    alice.fill("#service", "dnsmasq")
    alice.fill("#filename", "../../etc/passwd")
    alice.fill("textarea#content", "port=53\n")
    alice.get_by_role("button", name="Create").click()
    assert "path traversal" in alice.locator("#error").inner_text()
    assert alice.locator("#filename").input_value() == "../../etc/passwd"
    assert editor_text(alice) == "port=53\n"
    alice.screenshot(path=str(tmp_path / "bad-name.png"))
    alice.fill("#filename", "dnsmasq.conf")
    alice.get_by_role("button", name="Create").click()
    assert alice.locator("#saved").inner_text() == "Saved version 1."
    store = SqlConfigStore(make_engine(site.ledger_url))
    assert [v.version for v in items.history(store, HOSTS)] == [1, 2, 3, 4, 5]
    conf = items.get(store, ItemAddress("DNS", "release", "dnsmasq", "dnsmasq.conf"))
    assert (conf.content, conf.author) == ("port=53\n", "alice")

    # Publish without a Prefect server: a page saying so, the drafts untouched
    alice.goto(f"{site.url}/config/")
    alice.get_by_role("button", name="Publish dnsmasq to DNS/release").click()
    assert "the Prefect API at" in alice.locator("#error").inner_text()
    assert alice.locator("h1").inner_text() == "Not available"
    alice.screenshot(path=str(tmp_path / "publish-unavailable.png"))

    # logging out ends the session
    alice.goto(f"{site.url}/config/")
    alice.get_by_role("button", name="Log out").click()
    alice.wait_for_url(f"{site.url}/config/login")
    alice.goto(f"{site.url}/config/items/{HOSTS}")
    assert "/config/login" in alice.url
    alice_ctx.close()
    bob_ctx.close()


def test_a_reporter_sees_a_read_only_view_and_cannot_post(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    context, page = new_page(browser)
    log_in(page, site, "viewer")
    assert "read only" in page.locator("#project-DNS h2").inner_text()
    assert page.get_by_role("button", name="Publish dnsmasq to DNS/release").count() == 0
    assert page.get_by_role("link", name="New file").count() == 0
    page.screenshot(path=str(tmp_path / "reporter-tree.png"))
    page.get_by_role("link", name="dnsmasq_hosts").click()
    assert page.locator("pre#content").inner_text() == V1
    assert page.locator("textarea").count() == 0
    assert page.get_by_role("button", name="Save draft").count() == 0
    page.screenshot(path=str(tmp_path / "reporter-item.png"))
    page.get_by_role("link", name="History").click()
    assert page.locator("table.history tbody tr").count() == 1
    assert page.get_by_role("button", name="Restore v1 as a new draft").count() == 0

    # the endpoints refuse the reporter even with a valid session and CSRF token
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert csrf
    posts = {
        f"/config/items/{HOSTS}": {"content": "x\n", "base_version": "1"},
        "/config/new/DNS/release": {"service": "dnsmasq", "filename": "x.conf", "content": "x"},
        f"/config/restore/{HOSTS}": {"version": "1", "base_version": "1"},
        "/config/publish/DNS/release/dnsmasq": {"publish_key": "k" * 24, "versions": "x=1"},
    }
    for path, fields in posts.items():
        answer = page.request.post(
            site.url + path,
            form={**fields, "csrf_token": csrf},
            headers={"Origin": site.url},
            max_redirects=0,
        )
        assert answer.status == 403, (path, answer.text())
        assert "viewer needs DEVELOPER or higher" in answer.text()
    page.goto(f"{site.url}/config/new/DNS/release")
    assert "Refused" in page.locator("h1").inner_text()
    assert "Traceback" not in page.content()
    store = SqlConfigStore(make_engine(site.ledger_url))
    assert [v.version for v in items.history(store, HOSTS)] == [1]
    assert [str(a) for a in store.list_items("DNS")] == [str(HOSTS)]
    context.close()


NEW_HOSTS = "10.0.0.2 api.internal\n10.0.0.3 new.internal\n"


@pytest.mark.prefect
@pytest.mark.ssh
def test_the_publish_button_starts_the_flow_and_links_to_its_run(
    platform: Platform,
    platform_inventory: Path,
    clean_ssh_fleet: SshdFleet,
    dnsmasq_fleet: DnsmasqFleet,
    browser: Browser,
    tmp_path: Path,
) -> None:
    app = "cfg-pages"
    environment = {
        "hosts": [h.name for h in clean_ssh_fleet],
        "config": {"dnsmasq": dnsmasq_fleet.service()},
    }
    platform_inventory.write_text(
        yaml.safe_dump(
            {
                "hosts": host_entries(clean_ssh_fleet),
                "apps": {app: {"environments": {"release": environment}}},
            }
        )
    )
    dnsmasq_fleet.start("10.0.0.1 api.internal\n")
    engine = make_engine(f"sqlite:///{platform.home / 'ledger.db'}")
    service.create_user(engine, "cfg-page-dev")
    service.grant_role(engine, "cfg-page-dev", "DEVELOPER", space="default")
    token = service.create_token(engine, "cfg-page-dev")
    site = Site(platform.gateway_url, f"sqlite:///{platform.home / 'ledger.db'}", {"dev": token})

    context, page = new_page(browser)
    log_in(page, site, "dev")
    page.locator(f"#env-{app}-release").get_by_role("link", name="New file").click()
    page.fill("#service", "dnsmasq")
    page.fill("#filename", "hosts")
    page.fill("textarea#content", NEW_HOSTS)
    page.get_by_role("button", name="Create").click()
    assert page.locator("#saved").inner_text() == "Saved version 1."

    page.goto(f"{site.url}/config/")
    page.get_by_role("button", name=f"Publish dnsmasq to {app}/release").click()
    page.get_by_role("heading", name=f"Publish of dnsmasq to {app}/release started").wait_for()
    assert "hosts v1" in page.content()
    link = page.locator("#run-link").get_attribute("href") or ""
    ui = platform.api_url.removesuffix("/api")
    assert link.startswith(f"{ui}/runs/flow-run/"), link
    run_id = link.rsplit("/", 1)[-1]
    page.screenshot(path=str(tmp_path / "publish-started.png"))

    status = read_run(run_id)
    assert status.parameters["app"] == app and status.parameters["service"] == "dnsmasq"
    assert status.parameters["versions"] == {"hosts": 1}
    assert status.parameters["requested_by"] == "cfg-page-dev"
    assert "trigger:config-page" in status.tags
    submission = submission_of_run(engine, run_id)
    assert submission is not None and submission.principal == "cfg-page-dev"
    assert submission.via == "config-page"

    deadline = time.monotonic() + 240
    while not read_run(run_id).final and time.monotonic() < deadline:
        time.sleep(1)
    final = read_run(run_id)
    assert final.state_type == "COMPLETED", final.message
    assert {s.name: s.query("api.internal") for s in dnsmasq_fleet} == {
        h.name: {"10.0.0.2"} for h in clean_ssh_fleet
    }
    page.goto(f"{site.url}/config/")
    assert "published v1" in page.locator(f"#service-{app}-release-dnsmasq").inner_text()
    page.screenshot(path=str(tmp_path / "published-tree.png"))
    engine.dispose()
    context.close()
