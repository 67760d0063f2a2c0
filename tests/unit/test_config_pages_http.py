"""The config pages over HTTP, in-process (FastAPI's TestClient, a SQLite ledger, no Prefect):
the login exchanges a token for a session cookie (HttpOnly, SameSite=Strict, Secure over
https) and the token appears in no cookie or page; every POST without the session's CSRF
token, or from another origin, is refused; a REPORTER gets no edit form and 403 from every
POST; content is escaped; bad filenames are refused with the core's message; a stale save is
refused with both versions and the text kept; a revoked token ends its sessions; Publish names
a deployment missing from the catalogue; errors are pages without tracebacks."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quayside.auth import service
from quayside.config import items
from quayside.config.address import ItemAddress
from quayside.config.sql_store import SqlConfigStore
from quayside.gateway.app import create_app
from quayside.gateway.config import GatewayConfig
from quayside.gateway.web_cookies import SESSION_COOKIE
from quayside.ledger.db import make_engine, migrate
from quayside.settings import Settings

CONF = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq.conf")
INVENTORY = """\
apps:
  DNS:
    space: ops
    environments:
      release:
        config:
          dnsmasq: {kind: dnsmasq, dir: /etc/dnsmasq.d, main_file: dnsmasq.conf}
  WEB:
    space: web
    environments:
      prod: {}
"""


@dataclass
class Site:
    app: object
    url: str
    home: Path
    tokens: dict[str, str]

    def client(self, base_url: str = "http://testserver") -> TestClient:
        return TestClient(self.app, base_url=base_url, follow_redirects=False)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def migrated_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "ledger.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def site(tmp_path: Path, migrated_ledger: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    # no Prefect here, whatever platform a test before this one left PREFECT_API_URL naming
    # in this worker (the session platform sets it for its in-process clients)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "quayside.yaml").write_text(INVENTORY)
    shutil.copyfile(migrated_ledger, home / "ledger.db")
    url = f"sqlite:///{home / 'ledger.db'}"
    engine = make_engine(url)
    for name, role in (("dev", "DEVELOPER"), ("dev2", "DEVELOPER"), ("viewer", "REPORTER")):
        service.create_user(engine, name)
        service.grant_role(engine, name, role, space="ops")
    service.create_user(engine, "outsider")
    service.grant_role(engine, "outsider", "DEVELOPER", space="web")
    tokens = {n: service.create_token(engine, n) for n in ("dev", "dev2", "viewer", "outsider")}
    items.save(SqlConfigStore(engine), CONF, "port=53\n", author="dev", base_version=0)
    engine.dispose()
    settings = Settings(
        home=home,
        database_url=url,
        inventory_path=home / "quayside.yaml",
        gateway_host="127.0.0.1",
        gateway_port=1,
        prefect_host="127.0.0.1",
        prefect_port=1,
    )
    app = create_app(settings, GatewayConfig())
    yield Site(app, url, home, tokens)
    app.state.context.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def log_in(site: Site, user: str, client: TestClient | None = None) -> tuple[TestClient, str]:
    """A client logged in as ``user`` and its session's CSRF token."""
    client = client or site.client()
    form = client.get("/config/login")
    assert form.status_code == 200
    done = client.post(
        "/config/login",
        data={"csrf_token": csrf_of(form.text), "token": site.tokens[user], "next": "/config/"},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/config/"
    tree = client.get("/config/")
    assert tree.status_code == 200, tree.text
    return client, csrf_of(tree.text)


def test_login_sets_a_strict_httponly_session_cookie_and_never_the_token(site: Site) -> None:
    client = site.client()
    form = client.get("/config/login")
    assert "SameSite=strict" in form.headers["set-cookie"]
    done = client.post(
        "/config/login",
        data={"csrf_token": csrf_of(form.text), "token": site.tokens["dev"], "next": "/config/"},
    )
    cookies = done.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/config" in session
    assert "Secure" not in session  # plain http here
    token = site.tokens["dev"]
    assert all(token not in c and token.split("_")[2] not in c for c in cookies)
    page = client.get("/config/")
    assert token not in page.text and "dnsmasq.conf" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_over_https_the_cookies_are_secure(site: Site) -> None:
    client = site.client("https://testserver")
    form = client.get("/config/login")
    assert "Secure" in form.headers["set-cookie"]
    done = client.post(
        "/config/login",
        data={"csrf_token": csrf_of(form.text), "token": site.tokens["dev"]},
    )
    assert done.status_code == 303
    session = next(c for c in done.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "Secure" in session and "HttpOnly" in session


def test_a_bad_token_is_refused_401_without_a_session(site: Site) -> None:
    client = site.client()
    form = client.get("/config/login")
    bad = client.post(
        "/config/login",
        data={"csrf_token": csrf_of(form.text), "token": "qs_0123456789ab_" + "0" * 64},
    )
    assert bad.status_code == 401
    assert "token not accepted: unknown token" in bad.text
    assert SESSION_COOKIE not in client.cookies
    assert "Traceback" not in bad.text
    assert client.get("/config/").status_code == 303  # still logged out: back to the login


def test_repeated_failed_logins_are_throttled(site: Site) -> None:
    client = site.client()
    nonce = csrf_of(client.get("/config/login").text)
    statuses = []
    for i in range(GatewayConfig().auth_failures + 1):
        answer = client.post(
            "/config/login", data={"csrf_token": nonce, "token": f"qs_{i:012x}_" + "0" * 64}
        )
        statuses.append(answer.status_code)
        if answer.status_code == 401:
            nonce = csrf_of(answer.text)  # the form comes back with a fresh nonce
    assert statuses[:-1] == [401] * GatewayConfig().auth_failures
    assert statuses[-1] == 429  # the gateway's failed-authentication throttle counts them
    good = client.post("/config/login", data={"csrf_token": nonce, "token": site.tokens["dev"]})
    assert good.status_code == 429 and SESSION_COOKIE not in client.cookies


def test_a_logged_in_browser_skips_the_login_form(site: Site) -> None:
    client, _ = log_in(site, "dev")
    again = client.get("/config/login?next=/config/history/DNS/release/dnsmasq/dnsmasq.conf")
    assert again.status_code == 303
    assert again.headers["location"] == "/config/history/DNS/release/dnsmasq/dnsmasq.conf"


def test_the_login_form_needs_its_nonce(site: Site) -> None:
    client = site.client()
    client.get("/config/login")
    refused = client.post(
        "/config/login", data={"csrf_token": "forged", "token": site.tokens["dev"]}
    )
    assert refused.status_code == 403
    assert "CSRF token is missing or out of date" in refused.text
    assert SESSION_COOKIE not in client.cookies
    # another site's form (even with a guessed nonce) is refused by its Origin
    form = client.get("/config/login")
    foreign = client.post(
        "/config/login",
        data={"csrf_token": csrf_of(form.text), "token": site.tokens["dev"]},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "from another site" in foreign.text


def test_pages_without_a_session_go_to_the_login(site: Site) -> None:
    client = site.client()
    page = client.get("/config/items/DNS/release/dnsmasq/dnsmasq.conf")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/config/login?next=%2Fconfig%2Fitems%2FDNS")
    post = client.post("/config/items/DNS/release/dnsmasq/dnsmasq.conf", data={"content": "x"})
    assert post.status_code == 401 and "not logged in" in post.text
    client.cookies.set(SESSION_COOKIE, "made-up", path="/config")
    assert client.get("/config/").status_code == 303


def test_login_goes_back_only_to_a_config_page(site: Site) -> None:
    client = site.client()
    form = client.get("/config/login?next=//evil.example/x")
    assert 'name="next" value="/config/"' in form.text
    done = client.post(
        "/config/login",
        data={
            "csrf_token": csrf_of(form.text),
            "token": site.tokens["dev"],
            "next": "https://evil.example/",
        },
    )
    assert done.headers["location"] == "/config/"


@pytest.mark.parametrize(
    "path",
    [
        "/config/items/DNS/release/dnsmasq/dnsmasq.conf",
        "/config/new/DNS/release",
        "/config/restore/DNS/release/dnsmasq/dnsmasq.conf",
        "/config/publish/DNS/release/dnsmasq",
        "/config/logout",
    ],
)
def test_every_post_needs_the_sessions_csrf_token(site: Site, path: str) -> None:
    client, csrf = log_in(site, "dev")
    fields = {"content": "port=1\n", "base_version": "1", "version": "1", "service": "s",
              "filename": "f", "publish_key": "k" * 20, "versions": "dnsmasq.conf=1"}  # fmt: skip
    missing = client.post(path, data=fields)
    assert missing.status_code == 403 and "CSRF token" in missing.text
    wrong = client.post(path, data={**fields, "csrf_token": csrf[:-2] + "xx"})
    assert wrong.status_code == 403
    foreign = client.post(
        path, data={**fields, "csrf_token": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403 and "another site" in foreign.text
    cross = client.post(
        path, data={**fields, "csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    # another user's session token does not fit this session
    _, other_csrf = log_in(site, "dev2")
    assert client.post(path, data={**fields, "csrf_token": other_csrf}).status_code == 403
    store = SqlConfigStore(make_engine(site.url))
    assert items.latest_version_number(store, CONF) == 1  # nothing was saved


def test_a_reporter_reads_but_has_no_forms_and_every_post_is_403(site: Site) -> None:
    client, csrf = log_in(site, "viewer")
    tree = client.get("/config/")
    assert "dnsmasq.conf" in tree.text and "read only" in tree.text
    assert "/config/publish/" not in tree.text and "New file" not in tree.text
    assert "Publish" not in tree.text
    item = client.get("/config/items/DNS/release/dnsmasq/dnsmasq.conf")
    assert item.status_code == 200 and "port=53" in item.text
    assert "<textarea" not in item.text and "Save draft" not in item.text
    history = client.get("/config/history/DNS/release/dnsmasq/dnsmasq.conf")
    assert history.status_code == 200 and "Restore" not in history.text
    assert client.get("/config/new/DNS/release").status_code == 403
    posts = {
        "/config/items/DNS/release/dnsmasq/dnsmasq.conf": {"content": "x", "base_version": "1"},
        "/config/new/DNS/release": {"service": "s", "filename": "f", "content": "x"},
        "/config/restore/DNS/release/dnsmasq/dnsmasq.conf": {"version": "1", "base_version": "1"},
        "/config/publish/DNS/release/dnsmasq": {
            "publish_key": "k" * 20,
            "versions": "dnsmasq.conf=1",
        },
    }
    for path, fields in posts.items():
        refused = client.post(path, data={**fields, "csrf_token": csrf})
        assert refused.status_code == 403, (path, refused.text)
        assert "viewer" in refused.text and "DEVELOPER" in refused.text
    store = SqlConfigStore(make_engine(site.url))
    assert [v.version for v in items.history(store, CONF)] == [1]


def test_a_user_without_a_role_sees_nothing_of_the_project(site: Site) -> None:
    client, _ = log_in(site, "outsider")
    tree = client.get("/config/")
    assert "dnsmasq.conf" not in tree.text and "DNS" not in tree.text
    page = client.get("/config/items/DNS/release/dnsmasq/dnsmasq.conf")
    assert page.status_code == 403 and "port=53" not in page.text


def test_save_and_content_is_escaped_everywhere(site: Site) -> None:
    client, csrf = log_in(site, "dev")
    evil = '</textarea><script>alert("x")</script>\n<img src=x onerror=alert(1)>\n'
    saved = client.post(
        "/config/items/DNS/release/dnsmasq/dnsmasq.conf",
        data={
            "csrf_token": csrf,
            "content": evil,
            "base_version": "1",
            "message": "<b>bold</b>",
        },  # fmt: skip
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/config/items/DNS/release/dnsmasq/dnsmasq.conf?saved=2"
    for path in (
        "/config/items/DNS/release/dnsmasq/dnsmasq.conf?saved=2",
        "/config/items/DNS/release/dnsmasq/dnsmasq.conf?version=2",
        "/config/history/DNS/release/dnsmasq/dnsmasq.conf",
        "/config/diff/DNS/release/dnsmasq/dnsmasq.conf?before=1&after=2",
    ):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert "<script>" not in page.text and "<img" not in page.text and "<b>" not in page.text
    page = client.get("/config/items/DNS/release/dnsmasq/dnsmasq.conf")
    assert "&lt;/textarea&gt;&lt;script&gt;" in page.text
    store = SqlConfigStore(make_engine(site.url))
    assert items.get(store, CONF).content == evil  # stored as typed (CRLF from the form: LF)


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("../../etc/passwd", "path traversal"),
        ("/etc/passwd", "is absolute"),
        ("a\nb", "newline or control character"),
        ("a\x00b", "NUL byte"),
        ("a\\b", "backslash"),
        ("a//b", "empty path segment"),
        ("a b", "characters outside"),
    ],
)
def test_new_files_with_bad_names_are_refused_with_the_form_kept(
    site: Site, filename: str, message: str
) -> None:
    client, csrf = log_in(site, "dev")
    refused = client.post(
        "/config/new/DNS/release",
        data={"csrf_token": csrf, "service": "dnsmasq", "filename": filename, "content": "kept"},
    )
    assert refused.status_code == 400
    assert message in refused.text
    assert ">\nkept</textarea>" in refused.text
    store = SqlConfigStore(make_engine(site.url))
    assert [str(a) for a in store.list_items("DNS")] == [str(CONF)]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/config/items/DNS/release/dnsmasq/..%2F..%2Fetc%2Fpasswd", "path traversal"),
        ("/config/items/DNS/release/dnsmasq/%2Fetc%2Fpasswd", "is absolute"),
        ("/config/items/DNS/release/dnsmasq/a%00b", "NUL byte"),
        ("/config/diff/DNS/release/dnsmasq/a%09b?before=1&after=1", "control character"),
        ("/config/history/DNS/release/..%2F..", "not a name"),
        ("/config/items/DNS", "expected PROJECT/ENV/SERVICE/FILENAME"),
    ],
)
def test_bad_addresses_in_urls_are_refused(site: Site, path: str, message: str) -> None:
    client, _ = log_in(site, "dev")
    page = client.get(path)
    assert page.status_code == 400, page.text
    assert message in page.text and '<p class="error"' in page.text
    assert "Traceback" not in page.text


def test_a_newline_in_a_url_matches_no_page(site: Site) -> None:
    client, _ = log_in(site, "dev")
    page = client.get("/config/items/DNS/release/dnsmasq/a%0Ab")
    assert page.status_code == 404 and "port=53" not in page.text


def test_create_then_a_second_create_of_the_same_file_is_stale(site: Site) -> None:
    client, csrf = log_in(site, "dev")
    fields = {"csrf_token": csrf, "service": "dnsmasq", "filename": "conf.d/a.conf"}
    made = client.post("/config/new/DNS/release", data={**fields, "content": "one\n"})
    assert made.status_code == 303
    again = client.post("/config/new/DNS/release", data={**fields, "content": "two\n"})
    assert again.status_code == 409
    assert "stale save refused, nothing was saved" in again.text
    assert ">\ntwo\n</textarea>" in again.text


def test_a_stale_save_shows_both_versions_and_keeps_the_text(site: Site) -> None:
    alice, alice_csrf = log_in(site, "dev")
    bob, bob_csrf = log_in(site, "dev2")
    path = "/config/items/DNS/release/dnsmasq/dnsmasq.conf"
    assert 'name="base_version" value="1"' in alice.get(path).text
    assert bob.post(path, data={"csrf_token": bob_csrf, "content": "port=54\n",
                                "base_version": "1"}).status_code == 303  # fmt: skip
    stale = alice.post(
        path, data={"csrf_token": alice_csrf, "content": "port=55\n", "base_version": "1"}
    )
    assert stale.status_code == 409
    assert "you started from version 1, but the latest is version 2 by dev2" in stale.text
    assert 'class="line left">port=54' in stale.text and 'class="line right">port=55' in stale.text
    assert ">\nport=55\n</textarea>" in stale.text  # nothing lost
    assert 'name="base_version" value="2"' in stale.text
    retry = alice.post(
        path, data={"csrf_token": alice_csrf, "content": "port=55\n", "base_version": "2"}
    )
    assert retry.status_code == 303
    store = SqlConfigStore(make_engine(site.url))
    assert [(v.version, v.author, v.content) for v in items.history(store, CONF)] == [
        (1, "dev", "port=53\n"),
        (2, "dev2", "port=54\n"),
        (3, "dev", "port=55\n"),
    ]


def test_restore_makes_a_new_draft_and_a_stale_restore_is_refused(site: Site) -> None:
    client, csrf = log_in(site, "dev")
    path = "/config/items/DNS/release/dnsmasq/dnsmasq.conf"
    client.post(path, data={"csrf_token": csrf, "content": "port=54\n", "base_version": "1"})
    restore = "/config/restore/DNS/release/dnsmasq/dnsmasq.conf"
    done = client.post(restore, data={"csrf_token": csrf, "version": "1", "base_version": "2"})
    assert done.status_code == 303 and done.headers["location"].endswith("?saved=3")
    stale = client.post(restore, data={"csrf_token": csrf, "version": "2", "base_version": "2"})
    assert stale.status_code == 409 and "latest is version 3" in stale.text
    missing = client.post(restore, data={"csrf_token": csrf, "version": "9", "base_version": "3"})
    assert missing.status_code == 404 and "has no version 9" in missing.text
    store = SqlConfigStore(make_engine(site.url))
    latest = items.get(store, CONF)
    assert (latest.version, latest.content, latest.restored_from) == (3, "port=53\n", 1)


def test_diff_is_side_by_side(site: Site) -> None:
    client, csrf = log_in(site, "dev")
    path = "/config/items/DNS/release/dnsmasq/dnsmasq.conf"
    client.post(path, data={"csrf_token": csrf, "content": "port=54\nx=1\n", "base_version": "1"})
    page = client.get("/config/diff/DNS/release/dnsmasq/dnsmasq.conf?before=1&after=2")
    assert page.status_code == 200
    assert re.search(r'<tr class="changed">\s*<td class="no">1</td>\s*<td class="line left">'
                     r'port=53</td>\s*<td class="no">1</td>\s*<td class="line right">port=54',
                     page.text)  # fmt: skip
    assert re.search(r'<tr class="added">.*?line right">x=1<', page.text, re.S)
    bad = client.get("/config/diff/DNS/release/dnsmasq/dnsmasq.conf?before=1&after=x")
    assert bad.status_code == 400 and "after: expected a version number" in bad.text


def test_a_revoked_token_ends_its_sessions(site: Site) -> None:
    client, _ = log_in(site, "dev")
    engine = make_engine(site.url)
    service.revoke_token(engine, site.tokens["dev"])
    engine.dispose()
    page = client.get("/config/")
    assert page.status_code == 303 and page.headers["location"].startswith("/config/login")
    post = client.post("/config/logout", data={})
    assert post.status_code == 401 and "revoked or expired" not in post.text  # already ended


def test_logout_ends_the_session(site: Site) -> None:
    client, csrf = log_in(site, "dev")
    cookie = client.cookies.get(SESSION_COOKIE)
    out = client.post("/config/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/config/login"
    fresh = site.client()
    fresh.cookies.set(SESSION_COOKIE, cookie or "", path="/config")
    assert fresh.get("/config/").status_code == 303  # the old id is worthless


def publish_form(client: TestClient, service: str = "dnsmasq") -> dict[str, str]:
    tree = client.get("/config/")
    block = re.search(rf'action="/config/publish/DNS/release/{service}".*?</form>', tree.text, re.S)
    assert block, tree.text
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', block.group(0)))
    assert set(fields) == {"csrf_token", "publish_key", "versions"}
    return fields


def test_publish_names_a_deployment_missing_from_the_catalogue(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quayside.deployments import catalogue

    monkeypatch.setattr(
        catalogue, "CATALOGUE", tuple(s for s in catalogue.CATALOGUE if s.name != "config-publish")
    )
    client, _ = log_in(site, "dev")
    fields = publish_form(client)
    assert fields["versions"] == "dnsmasq.conf=1"  # what the page showed
    page = client.post("/config/publish/DNS/release/dnsmasq", data=fields)
    assert page.status_code == 503
    assert "the deployment &#39;config-publish&#39; is not in this Quayside" in page.text
    assert "your drafts are saved" in page.text and "Traceback" not in page.text


def test_publish_without_prefect_is_a_page_not_a_traceback(site: Site) -> None:
    client, _ = log_in(site, "dev")
    page = client.post("/config/publish/DNS/release/dnsmasq", data=publish_form(client))
    assert page.status_code == 503, page.text
    assert "the Prefect API at" in page.text and "not reachable" in page.text
    assert "Traceback" not in page.text


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"publish_key": "short"}, 400, "publish form is malformed"),
        ({"versions": ""}, 400, "publish form is malformed"),
        ({"versions": "../../etc/passwd=1"}, 400, "path traversal"),
        ({"versions": "dnsmasq.conf=0"}, 400, "dnsmasq.conf: expected a version number"),
        ({"versions": "dnsmasq.conf=x"}, 400, "dnsmasq.conf: expected a version number"),
    ],
)
def test_bad_publish_forms_are_refused(
    site: Site, change: dict[str, str], status: int, message: str
) -> None:
    client, _ = log_in(site, "dev")
    page = client.post(
        "/config/publish/DNS/release/dnsmasq", data={**publish_form(client), **change}
    )
    assert page.status_code == status and message in page.text


def test_a_service_not_set_up_for_publishing_has_no_button_and_is_refused(site: Site) -> None:
    client, csrf = log_in(site, "dev")
    made = client.post(
        "/config/new/DNS/release",
        data={"csrf_token": csrf, "service": "nginx", "filename": "nginx.conf", "content": "x"},
    )
    assert made.status_code == 303
    tree = client.get("/config/")
    assert "/config/publish/DNS/release/nginx" not in tree.text
    assert "apps.DNS.environments.release.config.nginx" in tree.text
    fields = {**publish_form(client), "versions": "nginx.conf=1"}
    page = client.post("/config/publish/DNS/release/nginx", data=fields)
    assert page.status_code == 400
    assert "service &#39;nginx&#39; is not set up for publishing" in page.text


def test_the_stylesheet_is_served(site: Site) -> None:
    css = site.client().get("/config/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
