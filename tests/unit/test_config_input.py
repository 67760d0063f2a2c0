"""Bad input to the config center is refused before anything is stored, with the field named:
traversal and odd filenames, bad names, oversized files and values."""

from __future__ import annotations

import pytest

from quayside.config.address import EnvAddress, ItemAddress, check_filename, check_variable_name
from quayside.config.errors import FileTooLarge
from quayside.config.items import check_content
from quayside.config.limits import MAX_FILE_BYTES
from quayside.config.vault_refs import parse_reference
from quayside.errors import InputError


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("../../etc/passwd", "path traversal"),
        ("conf/../../x", "path traversal"),
        ("./dnsmasq.conf", "path traversal"),
        ("/etc/passwd", "is absolute"),
        ("dnsmasq\x00.conf", "NUL byte"),
        ("dnsmasq.conf\n", "newline or control character"),
        ("a\rb", "newline or control character"),
        ("conf.d//web.conf", "empty path segment"),
        ("conf.d/", "empty path segment"),
        ("a\\..\\b", "backslash"),
        ("", "required"),
        ("x" * 300, "longer than 255"),
        ("a/b/c/d/e/f/g/h/i", "directory levels"),
        ("dns masq.conf", "characters outside"),
        ("$(reboot)", "characters outside"),
    ],
)
def test_bad_filenames_are_refused_naming_the_field(filename: str, problem: str) -> None:
    with pytest.raises(InputError) as refused:
        ItemAddress("DNS", "release", "dnsmasq", filename)
    assert str(refused.value).startswith("filename: ") and problem in str(refused.value)
    assert "\x00" not in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("filename", ["dnsmasq.conf", "dnsmasq_hosts", "conf.d/web.conf", ".env"])
def test_ordinary_filenames_pass(filename: str) -> None:
    assert check_filename(filename) == filename


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        (("../x", "release", "dnsmasq", "a"), "project"),
        (("DNS", "", "dnsmasq", "a"), "environment"),
        (("DNS", "release", "dns/masq", "a"), "service"),
        (("DNS", "re lease", "dnsmasq", "a"), "environment"),
    ],
)
def test_bad_names_name_their_field(parts: tuple[str, str, str, str], field: str) -> None:
    with pytest.raises(InputError, match=f"^{field}: "):
        ItemAddress(*parts)


def test_addresses_parse_and_print_as_the_pull_endpoint_keys_them() -> None:
    address = ItemAddress.parse("DNS/release/dnsmasq/conf.d/a.conf")
    assert address == ItemAddress("DNS", "release", "dnsmasq", "conf.d/a.conf")
    assert address.path == "/DNS/release/dnsmasq/conf.d/a.conf"
    assert address.env == EnvAddress.parse("DNS/release")
    with pytest.raises(InputError, match="PROJECT/ENV/SERVICE/FILENAME"):
        ItemAddress.parse("DNS/release/dnsmasq")
    with pytest.raises(InputError, match="filename: .*path traversal"):
        ItemAddress.parse("DNS/release/dnsmasq/../../etc/passwd")


def test_oversized_files_are_refused_with_the_limit() -> None:
    check_content("x" * MAX_FILE_BYTES)
    with pytest.raises(FileTooLarge, match=f"over the config file limit of {MAX_FILE_BYTES} bytes"):
        check_content("x" * (MAX_FILE_BYTES + 1))
    with pytest.raises(FileTooLarge, match="limit"):
        check_content("é" * (MAX_FILE_BYTES // 2 + 1))  # counted in UTF-8 bytes


@pytest.mark.parametrize("name", ["1abc", "a-b", "a.b", "", "x" * 129, "a b"])
def test_bad_variable_names(name: str) -> None:
    with pytest.raises(InputError, match="^name: "):
        check_variable_name(name)


def test_vault_references() -> None:
    assert parse_reference("secret/data/app/db#password") == ("secret", "app/db", "password")
    assert parse_reference("kv/app#token") == ("kv", "app", "token")
    for bad in ("secret/app", "secret#key", "#key", "secret/app#"):
        with pytest.raises(InputError, match="MOUNT/PATH#KEY"):
            parse_reference(bad)
