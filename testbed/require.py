"""Missing components: in CI (``CI=true``) a test that lacks a component FAILS; elsewhere it
skips with a reason that says how to get the component."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(component: str, how: str) -> NoReturn:
    """Fail (CI) or skip (elsewhere) because ``component`` is not available; ``how`` says how
    to get it, e.g. ``"run `make test`, which installs openssh-server"``."""
    message = f"{component} is not available: {how}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def need_binary(name: str, package: str) -> str:
    """Path of executable ``name`` (also searched in sbin dirs), or fail/skip naming the
    Debian ``package`` that provides it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        missing(name, f"install the Debian package {package} (`make test` does this)")
    return path
