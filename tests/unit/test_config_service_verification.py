"""An nginx or command config service must say how a publish is verified (``verify_url`` or
``verify``): without one a host would count as verified having checked nothing. The
inventory refuses it at load, and ``quayside check`` names the service and the key to add."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from quayside.inventory.config_services import ConfigService
from testbed.platform import PROJECT_DIR

NGINX = {"kind": "nginx", "dir": "/etc/nginx/site", "main_file": "nginx.conf"}
COMMAND = {"kind": "command", "dir": "/srv/app/conf", "check": ["true"], "reload": ["true"]}


@pytest.mark.parametrize("entry", [NGINX, COMMAND], ids=["nginx", "command"])
def test_a_service_without_a_verification_is_refused(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="needs a verification: add verify_url") as info:
        ConfigService.model_validate(entry)
    assert f" {entry['kind']} service needs" in str(info.value) and "or verify (" in str(info.value)
    # either key is enough
    assert ConfigService.model_validate({**entry, "verify_url": "http://{address}/"}).verify_url
    assert ConfigService.model_validate({**entry, "verify": ["probe", "{address}"]}).verify


def test_dnsmasq_is_verified_by_its_dns_answers() -> None:
    service = {"kind": "dnsmasq", "dir": "/etc/dnsmasq.d/q", "main_file": "dnsmasq.conf"}
    assert ConfigService.model_validate(service).verify is None


def test_quayside_check_names_the_service_and_the_key_to_add(tmp_path: Path) -> None:
    path = tmp_path / "quayside.yaml"
    env = {"hosts": ["web-1"], "config": {"edge": NGINX}}
    inventory = {"hosts": {"web-1": {"address": "127.0.0.11"}},
                 "apps": {"web": {"environments": {"prod": env}}}}  # fmt: skip
    path.write_text(yaml.safe_dump(inventory))
    result = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "check", str(path)],
        cwd=PROJECT_DIR, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "apps.web.environments.prod.config.edge" in result.stderr
    assert "an nginx service needs a verification: add verify_url" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
