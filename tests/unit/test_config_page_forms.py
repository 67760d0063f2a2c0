"""The config pages' small pieces: CSRF comparison and the same-site check, form parsing,
where a login may go back to, the side-by-side diff rows, and the versions a Publish form
carries."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from quayside.errors import InputError
from quayside.gateway.routes_config_login import safe_next
from quayside.gateway.web_csrf import CsrfRefused, check_same_site, check_token, tokens_match
from quayside.gateway.web_diff import DiffRow, side_by_side
from quayside.gateway.web_forms import MAX_FIELDS, parse_form
from quayside.gateway.web_publish import MAX_FILES, decode_versions, encode_versions

FORM = "application/x-www-form-urlencoded"


def request(headers: dict[str, str], scheme: str = "http", host: str = "gw:8400") -> Request:
    raw = [(b"host", host.encode())] + [
        (k.lower().encode(), v.encode()) for k, v in headers.items()
    ]
    return Request({"type": "http", "method": "POST", "scheme": scheme, "path": "/config/x",
                    "headers": raw, "query_string": b"", "server": ("gw", 8400)})  # fmt: skip


def test_tokens_match_only_equal_non_empty_tokens() -> None:
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("abc", None)
    assert not tokens_match(None, None)
    assert not tokens_match("", "")
    assert not tokens_match("abc", "ab")
    assert not tokens_match("abc", "abc\udcff")  # odd text is a mismatch, not an error


def test_same_site_check_refuses_other_origins() -> None:
    check_same_site(request({}))  # no Origin (older browsers, same-origin GET forms): allowed
    check_same_site(request({"Origin": "http://gw:8400"}))
    check_same_site(request({"Origin": "HTTP://GW:8400", "Sec-Fetch-Site": "same-origin"}))
    check_same_site(request({"Origin": "https://gw"}, scheme="https", host="gw"))
    # behind a TLS-terminating proxy: the browser says https, the gateway sees http
    check_same_site(request({"Origin": "https://config.example"}, host="config.example"))
    check_same_site(request({"Origin": "https://[::1]:8400"}, host="[::1]:8400"))
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://gw:8401"},
        {"Origin": "http://gw.evil.example:8400"},
        {"Origin": "http://evil.example@gw:8400"},
        {"Origin": "null"},
        {"Origin": ""},
        {"Origin": "file://gw:8400"},
        {"Origin": "http://gw:x"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        with pytest.raises(CsrfRefused, match="another site"):
            check_same_site(request(headers))


def test_check_token_needs_the_expected_token() -> None:
    check_token(request({}), "s3cret-token", "s3cret-token")
    with pytest.raises(CsrfRefused, match="missing or out of date") as refused:
        check_token(request({}), "s3cret-token", "other")
    assert "s3cret" not in str(refused.value)


def test_forms_are_parsed_as_urlencoded_utf8_with_lf_newlines() -> None:
    form = parse_form(b"content=a%0D%0Ab%0D%0A&base_version=3&template=1&x=1&x=2&empty=", FORM)
    assert form.text("content") == "a\nb\n"
    assert form.number("base_version") == 3
    assert form.flag("template") and not form.flag("other")
    assert form.text("x") == "1" and form.text("empty") == "" and form.text("none", "d") == "d"
    assert parse_form(b"k=%E4%B8%AD", FORM + "; charset=utf-8").text("k") == "中"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"a=1", "application/json", "must be sent as application/x-www-form-urlencoded"),
        (b"a=1", None, "must be sent as"),
        (b"a=\xff", FORM, "not UTF-8"),
        (b"a=%ff", FORM, "not UTF-8"),
        ("&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)).encode(), FORM, "more than"),
    ],
)
def test_bad_forms_are_refused(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_form(body, content_type)


@pytest.mark.parametrize("raw", ["", "x", "-1", "1.5", "1" * 13])
def test_version_fields_must_be_numbers(raw: str) -> None:
    with pytest.raises(InputError, match="base version: expected a version number"):
        parse_form(f"v={raw}".encode(), FORM).number("v", label="base version")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/config/items/DNS/release/dns/x.conf", "/config/items/DNS/release/dns/x.conf"),
        ("/config/diff/a/b/c/d?before=1&after=2", "/config/diff/a/b/c/d?before=1&after=2"),
        (None, "/config/"),
        ("https://evil.example/config/", "/config/"),
        ("//evil.example/config/", "/config/"),
        ("/config//evil.example", "/config/"),
        ("/config/\\evil", "/config/"),
        ("/api/tasks", "/config/"),
        ("/config/x\ny", "/config/"),
    ],
)  # fmt: skip
def test_login_goes_back_only_to_config_pages(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_side_by_side_rows() -> None:
    before = "".join(f"line {i}\n" for i in range(1, 21))
    after = before.replace("line 10\n", "line ten\n").replace("line 20\n", "") + "new\n"
    rows = side_by_side(before, after)
    assert rows[0] == DiffRow("skipped", None, "6 unchanged lines", None, "")
    assert rows[1:4] == [DiffRow("same", i, f"line {i}", i, f"line {i}") for i in (7, 8, 9)]
    assert rows[4] == DiffRow("changed", 10, "line 10", 10, "line ten")
    assert rows[5:8] == [DiffRow("same", i, f"line {i}", i, f"line {i}") for i in (11, 12, 13)]
    assert rows[8] == DiffRow("skipped", None, "3 unchanged lines", None, "")
    assert rows[-4:-1] == [DiffRow("same", i, f"line {i}", i, f"line {i}") for i in (17, 18, 19)]
    assert rows[-1] == DiffRow("changed", 20, "line 20", 20, "new")


def test_side_by_side_added_removed_and_equal() -> None:
    assert side_by_side("a\n", "a\n") == []
    assert side_by_side("a\nb\n", "a\n") == [
        DiffRow("same", 1, "a", 1, "a"),
        DiffRow("removed", 2, "b", None, ""),
    ]
    assert side_by_side("", "x\n") == [DiffRow("added", None, "", 1, "x")]
    # only the final newline differs: still shown, never "no difference"
    assert side_by_side("a\n", "a") == [
        DiffRow("changed", None, "(ends with a newline)", None, "(no newline at end of file)")
    ]


def test_publish_versions_travel_in_one_field() -> None:
    versions = {"hosts": 3, "conf.d/web.conf": 12, "a@b+c": 1}
    text = encode_versions(versions)
    assert text == "a@b+c=1;conf.d/web.conf=12;hosts=3"
    assert decode_versions(text) == versions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "malformed"),
        (";", "malformed"),
        (";".join(f"f{i}=1" for i in range(MAX_FILES + 1)), "malformed"),
        ("hosts", "expected FILE=VERSION"),
        ("hosts=x", "expected a version number"),
        ("hosts=0", "expected a version number"),
        ("hosts=-1", "expected a version number"),
        ("../x=1", "path traversal"),
        ("/etc/hosts=1", "is absolute"),
    ],
)
def test_bad_publish_versions_are_refused(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        decode_versions(text)
