"""``redact_url``: no credential of any URL form survives into a message or a log line."""

from __future__ import annotations

import pytest

from quayside.commands.git import check_repo_url, redact_url
from quayside.errors import InputError

TOKEN = "glpat-Zx9KqTT3sWy8vB2nC4dE"
GH_TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"

CASES = [
    # scheme URLs: the whole userinfo goes, user name included
    (
        "https://user:s3cret@gitlab.example.com/team/app.git",
        "https://***@gitlab.example.com/team/app.git",
    ),
    (
        f"https://{TOKEN}@gitlab.example.com/team/app.git",
        "https://***@gitlab.example.com/team/app.git",
    ),
    (f"https://{GH_TOKEN}@github.com/o/r.git", "https://***@github.com/o/r.git"),
    (
        f"https://oauth2:{TOKEN}@gitlab.example.com/team/app.git",
        "https://***@gitlab.example.com/team/app.git",
    ),
    (f"https://x-access-token:{GH_TOKEN}@github.com/o/r", "https://***@github.com/o/r"),
    (
        "https://deploy@gitlab.example.com/team/app.git",
        "https://***@gitlab.example.com/team/app.git",
    ),
    ("https://user:@host/x", "https://***@host/x"),
    ("https://:s3cret@host/x", "https://***@host/x"),
    ("https://@host/x", "https://***@host/x"),
    # percent-encoded userinfo, '@' and other delimiters inside the password
    ("https://us%40er:p%40ss%3Aword@host/x.git", "https://***@host/x.git"),
    ("https://%74%6f%6b%65%6e@host/x", "https://***@host/x"),
    ("https://user:p@ss@host/x.git", "https://***@host/x.git"),
    ("https://user:p@s@s@host:8443/x.git", "https://***@host:8443/x.git"),
    ("https://user:pa/ss@host/x.git", "https://***@host/x.git"),
    ("https://dGVzdA/Ab+x=@host/x.git", "https://***@host/x.git"),
    ("https://user:pa?ss@host/x.git", "https://***@host/x.git"),
    ("https://user:pa#ss@host/x.git", "https://***@host/x.git"),
    ("https://user:pa:ss@host/x.git", "https://***@host/x.git"),
    # IPv6 hosts, ports, other schemes, upper case
    ("https://user:s3cret@[::1]:8443/team/app.git", "https://***@[::1]:8443/team/app.git"),
    ("https://[2001:db8::1]/team/app.git", "https://[2001:db8::1]/team/app.git"),
    (
        "ssh://git:s3cret@[2001:db8::1]:2222/team/app.git",
        "ssh://***@[2001:db8::1]:2222/team/app.git",
    ),
    ("ssh://git@host:2222/team/app.git", "ssh://***@host:2222/team/app.git"),
    ("HTTPS://User:S3cret@Host/x", "HTTPS://***@Host/x"),
    ("git+https://user:s3cret@host/x", "git+https://***@host/x"),
    ("http://user:s3cret@127.0.0.1:9/team/app.git", "http://***@127.0.0.1:9/team/app.git"),
    # no credentials: unchanged
    ("https://gitlab.example.com/team/app.git", "https://gitlab.example.com/team/app.git"),
    ("/srv/git/site.git", "/srv/git/site.git"),
    ("file:///srv/git/site.git", "file:///srv/git/site.git"),
    ("gitlab.example.com:team/app.git", "gitlab.example.com:team/app.git"),
    # no scheme: a plain login name stays (SSH never carries a secret there) ...
    ("git@gitlab.example.com:team/app.git", "git@gitlab.example.com:team/app.git"),
    ("deploy_bot@[2001:db8::1]:team/app.git", "deploy_bot@[2001:db8::1]:team/app.git"),
    # ... anything with a password or that looks like a token does not
    ("git:s3cret@gitlab.example.com:team/app.git", "***@gitlab.example.com:team/app.git"),
    ("user:p@ss@host:team/app.git", "***@host:team/app.git"),
    (f"{TOKEN}@gitlab.example.com:team/app.git", "***@gitlab.example.com:team/app.git"),
    (f"{GH_TOKEN}@github.com:o/r.git", "***@github.com:o/r.git"),
    ("0123456789abcdef0123@host:team/app.git", "***@host:team/app.git"),
    ("Admin@host:team/app.git", "***@host:team/app.git"),
    ("user:s3cret@host/team/app.git", "***@host/team/app.git"),
    ("https:user:s3cret@host/x", "***@host/x"),
    ("  https://user:s3cret@host/x", "***@host/x"),
    ("%75ser:%73ecret@host:x.git", "***@host:x.git"),
    ("a" * 33 + "@host:x.git", "***@host:x.git"),
]


@pytest.mark.parametrize(("url", "shown"), CASES)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(("url", "shown"), CASES)
def test_no_secret_survives(url: str, shown: str) -> None:
    for secret in ("s3cret", "S3cret", TOKEN, GH_TOKEN, "p@ss", "pa/ss", "%73ecret", "dGVzdA"):
        if secret in url:
            assert secret not in redact_url(url)


def test_refusals_name_the_url_without_its_password() -> None:
    with pytest.raises(InputError) as raised:
        check_repo_url(f"ext::sh -c id #https://user:{TOKEN}@host/x")
    assert TOKEN not in raised.value.message
    assert "uses a transport that runs commands" in raised.value.message
    with pytest.raises(InputError) as raised:
        check_repo_url(f"-https://{TOKEN}@host/x")
    assert TOKEN not in raised.value.message and "starts with '-'" in raised.value.message
