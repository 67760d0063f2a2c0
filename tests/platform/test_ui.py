"""The Prefect UI is the console: in headless Chromium, log in with the API auth string
`quayside up` generated (a wrong one is refused), open the hello-release deployment it
registered, press Run → Quick run → Run, and watch the run complete."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from quayside.ledger.db import make_engine
from quayside.ledger.models import ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.runs import prefect_client, read_run
from quayside.settings import load_settings
from testbed.platform import Platform
from testbed.require import missing, need_binary

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def existing_runs(api_url: str) -> set[str]:
    async def read() -> set[str]:
        async with prefect_client(api_url) as client:
            return {str(run.id) for run in await client.read_flow_runs(limit=200)}

    # Playwright's sync API runs an event loop in this thread: use another one
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, read()).result()


@pytest.fixture
def browser_page() -> Iterator[object]:
    chromium = need_binary("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright", "run `make test`, which syncs the dev dependencies")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 900})
        finally:
            browser.close()


def log_in(page: Page, ui: str, auth_string: str, tmp_path: Path) -> None:
    """Open the UI: Prefect's login page asks for the auth string; a wrong one stays there."""
    page.goto(f"{ui}/deployments")
    field = page.get_by_placeholder("admin:pass")
    field.wait_for(timeout=30_000)
    assert "/login" in page.url
    field.fill("admin:not-the-secret")
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Authentication failed.").first.wait_for(timeout=30_000)
    assert "/login" in page.url
    page.screenshot(path=str(tmp_path / "login.png"))
    field.fill(auth_string)
    page.get_by_role("button", name="Login").click()
    page.wait_for_url(f"{ui}/deployments", timeout=30_000)


def test_quick_run_from_the_ui(
    platform: Platform, platform_inventory: Path, browser_page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page

    page = browser_page
    assert isinstance(page, Page)
    platform_inventory.write_text(
        "hosts:\n  here: {address: 127.0.0.1, transport: local}\ngroups:\n  demo: [here]\n"
    )
    ui = platform.api_url.removesuffix("/api")
    log_in(page, ui, platform.auth_string, tmp_path)
    page.get_by_text("hello-release").first.click()

    def run_links() -> set[str]:
        links = page.locator("a[href*='/runs/flow-run/']")
        return {links.nth(i).get_attribute("href") or "" for i in range(links.count())}

    earlier = existing_runs(platform.api_url)  # runs other tests started, listed in the UI
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Quick run").click()
    # `command` is a list parameter, so the UI asks to confirm the parameters: the dialog
    # shows them with their descriptions and the catalogue's defaults filled in
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("host group (or a single host) from quayside.yaml").wait_for()
    dialog.get_by_role("button", name="Run", exact=True).click()
    # the UI links the new run in a toast
    new_links: set[str] = set()
    deadline = time.monotonic() + 30
    while not new_links and time.monotonic() < deadline:
        new_links = {link for link in run_links() if link.rsplit("/", 1)[-1] not in earlier}
        page.wait_for_timeout(250)
    assert len(new_links) == 1, new_links
    run_id = new_links.pop().rsplit("/", 1)[-1]

    deadline = time.monotonic() + 180
    while not read_run(run_id).final and time.monotonic() < deadline:
        time.sleep(1)
    status = read_run(run_id)
    assert status.state_type == "COMPLETED", status.message

    page.goto(f"{ui}/runs/flow-run/{run_id}")
    page.get_by_text("Completed").first.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "flow-run.png"))

    engine = make_engine(load_settings().database_url)
    release = next(r for r in list_releases(engine, "hello", "demo") if r.flow_run_id == run_id)
    assert release.status == ReleaseStatus.succeeded
    assert release.requested_by == "ui"
