"""The one way a test meets a missing component (testbed/require.py): it FAILS under
CI=true and skips elsewhere, both with a message saying how to get the component."""

from __future__ import annotations

import pytest

from testbed.require import missing, need_binary


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_a_missing_component_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="sshd is not available: install it"):
        missing("sshd", "install it")
    with pytest.raises(pytest.fail.Exception, match="Debian package no-such-package"):
        need_binary("quayside-no-such-binary", "no-such-package")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_component_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="sshd is not available: install it"):
        missing("sshd", "install it")


def test_a_present_binary_is_found() -> None:
    assert need_binary("sh", "dash").endswith("/sh")
