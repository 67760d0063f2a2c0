"""Secret variables: the key file in QUAYSIDE_HOME is created 0600 on first use and refused when
others can read it; sealed values open only with that key; a secret shows as •••• in repr,
str, f-strings and log records."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from quayside.config.masking import MASK, SecretText
from quayside.config.secret_box import KEY_FILE, SecretBox, SecretKeyError, load_or_create_key


def test_key_is_created_private_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = load_or_create_key(home)
    path = home / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(home) == key


def test_a_readable_key_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(SecretKeyError, match="0644") as refused:
        load_or_create_key(tmp_path)
    assert refused.value.hint == f"chmod 600 {tmp_path / KEY_FILE}"


def test_sealed_values_open_with_their_key_only(tmp_path: Path) -> None:
    box = SecretBox.from_home(tmp_path / "a")
    sealed = box.seal("hunter2")
    assert sealed.startswith("fernet:") and "hunter2" not in sealed
    assert box.open(sealed, what="DNS/release $pw v1") == "hunter2"
    other = SecretBox.from_home(tmp_path / "b")
    with pytest.raises(SecretKeyError, match=r"DNS/release \$pw v1: cannot decrypt") as refused:
        other.open(sealed, what="DNS/release $pw v1")
    assert "hunter2" not in str(refused.value) and "hunter2" not in repr(box)


def test_secret_text_is_masked_wherever_it_is_shown(caplog: pytest.LogCaptureFixture) -> None:
    value = SecretText("hunter2")
    assert repr(value) == str(value) == f"{value}" == "%s" % value == MASK  # noqa: UP031
    assert repr([value]) == f"[{MASK}]"
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("value %s %r", value, value)
    assert "hunter2" not in caplog.text and MASK in caplog.text
    assert value.reveal() == "hunter2" and type(value.reveal()) is str
