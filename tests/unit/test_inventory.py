"""quayside.yaml validation: every error names the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from quayside.errors import ConfigError, NotFoundError
from quayside.inventory import group_hosts, load_inventory, parse_inventory, resolve_target

GOOD = """
hosts:
  web-1: {address: 127.0.0.11, port: 2201, user: deploy, key_file: ~/.ssh/id_ed25519}
  web-2: {address: 127.0.0.12}
  web-3: {address: 127.0.0.13, verify_host_key: false}
groups:
  web: [web-1, web-2]
apps:
  shop:
    repo: https://git.example.com/shop.git
    deploy_root: /srv/shop
    shared_paths: [logs, .env]
    build: [["make", "build"], "composer install --no-dev"]
    hooks: {post_switch: [["systemctl", "reload", "php-fpm"]]}
    health_check: {url: "http://127.0.0.1/health", retries: 3}
    tag_rules:
      - {pattern: "^qa-", environment: test}
      - {pattern: "^release-", environment: prod, approval: true}
    environments:
      test: {hosts: [web-3]}
      prod:
        groups: [web]
        batch: "50%"
        failure_threshold: 1
        approval: {required: 1, role: MASTER}
secrets:
  gitlab: {env: GITLAB_TOKEN}
  vault_db: {vault: "secret/data/shop#db"}
"""


def test_good_inventory_resolves() -> None:
    inv = parse_inventory(GOOD)
    target = resolve_target(inv, "shop", "prod")
    assert target.host_names == ["web-1", "web-2"]
    assert target.deploy_root == "/srv/shop"
    assert target.env.batch == "50%"
    assert resolve_target(inv, "shop", "prod", ["web-2"]).host_names == ["web-2"]
    assert group_hosts(inv, "web") == ["web-1", "web-2"]
    assert group_hosts(inv, "web-3") == ["web-3"]
    assert inv.hosts["web-3"].verify_host_key is False
    assert inv.hosts["web-1"].verify_host_key is True


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "quayside.yaml")
    return str(info.value)


def test_unknown_host_in_environment_names_key_path() -> None:
    text = GOOD.replace("test: {hosts: [web-3]}", "test: {hosts: [web-3, web-9]}")
    assert "quayside.yaml: apps.shop.environments.test.hosts[1]: unknown host 'web-9'" in _error(
        text
    )


def test_unknown_group_member_and_group_reference() -> None:
    text = GOOD.replace("web: [web-1, web-2]", "web: [web-1, nope]").replace(
        "groups: [web]", "groups: [web, db]"
    )
    message = _error(text)
    assert "groups.web[1]: unknown host 'nope'" in message
    assert "apps.shop.environments.prod.groups[1]: unknown group 'db'" in message


def test_unknown_key_is_reported_with_path() -> None:
    message = _error(GOOD.replace("port: 2201", "prot: 2201"))
    assert "quayside.yaml: hosts.web-1.prot: unknown key" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "deploy_root: /srv/shop",
            "deploy_root: srv/shop",
            "apps.shop.deploy_root: must be an absolute",
        ),
        ("deploy_root: /srv/shop", "deploy_root: /srv/../etc", "apps.shop.deploy_root"),
        ("shared_paths: [logs, .env]", "shared_paths: [../etc]", "apps.shop.shared_paths"),
        ('batch: "50%"', 'batch: "half"', "apps.shop.environments.prod.batch: expected a number"),
        ('pattern: "^qa-"', 'pattern: "(["', "apps.shop.tag_rules[0].pattern: not a valid regular"),
        (
            "environment: test}",
            "environment: staging}",
            "tag_rules[0].environment: unknown environment 'staging'",
        ),
        ("port: 2201", "port: 99999", "hosts.web-1.port"),
        (
            "{env: GITLAB_TOKEN}",
            "{env: GITLAB_TOKEN, vault: 'a#b'}",
            "secrets.gitlab: give exactly one",
        ),
        (
            '{vault: "secret/data/shop#db"}',
            "{vault: secret/data/shop}",
            "secrets.vault_db: vault reference",
        ),
        (
            'health_check: {url: "http://127.0.0.1/health", retries: 3}',
            "health_check: {retries: 3}",
            "apps.shop.health_check: give exactly one of url or command",
        ),
        ("web-2: {address: 127.0.0.12}", "web 2: {address: 127.0.0.12}", "is not a valid name"),
    ],
)
def test_bad_values_name_the_key(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    assert expected in _error(GOOD.replace(old, new))


def test_yaml_syntax_error_has_line_and_column() -> None:
    message = _error("hosts:\n  web-1: {address: [\n")
    assert message.startswith("quayside.yaml: line ")
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string"])
def test_wrong_top_level(text: str) -> None:
    assert _error(text).startswith("quayside.yaml: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_inventory(tmp_path / "nope.yaml")
    assert "no such file" in str(info.value)
    assert info.value.hint


def test_resolve_unknown_names() -> None:
    inv = parse_inventory(GOOD)
    with pytest.raises(NotFoundError, match="unknown app 'nope' \\(apps: shop\\)"):
        resolve_target(inv, "nope", "prod")
    with pytest.raises(NotFoundError, match="no environment 'qa'"):
        resolve_target(inv, "shop", "qa")
    with pytest.raises(NotFoundError, match="web-3 are not in shop/prod"):
        resolve_target(inv, "shop", "prod", ["web-3"])
    with pytest.raises(NotFoundError, match="unknown host group 'db'"):
        group_hosts(inv, "db")
