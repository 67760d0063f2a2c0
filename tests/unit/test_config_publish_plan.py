"""Config publish without a host: the facts a host prints, the per-host plan (changed files,
masked diff, reload or restart, DNS records to verify), the approval's Markdown and digest,
the service commands and their argv, the inventory's config entries, and the bad input a
publish refuses before anything runs."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from quayside.commands import config_files
from quayside.config import items, variables
from quayside.config.address import EnvAddress, ItemAddress
from quayside.config.dns_records import changed_records, conf_records, hosts_records
from quayside.config.errors import FileTooLarge, TemplateError
from quayside.config.publish_files import choose_items, rendered_files, secret_masker
from quayside.config.publish_plan import (
    HostFacts,
    PublishFile,
    check_records,
    content_digest,
    parse_facts,
    plan_host,
    plan_markdown,
)
from quayside.config.records import content_hash
from quayside.config.secret_box import SecretBox
from quayside.config.service_commands import action_for, host_commands
from quayside.config.sql_store import SqlConfigStore
from quayside.errors import ConfigError, InputError, NotFoundError
from quayside.inventory import load_inventory
from quayside.inventory.config_services import ConfigService
from quayside.ledger.db import make_engine, migrate

DNS = ConfigService(kind="dnsmasq", dir="/etc/dnsmasq.d/{host}", main_file="dnsmasq.conf")
NGINX = ConfigService(
    kind="nginx", dir="/etc/nginx/site", main_file="nginx.conf", verify_url="http://{address}/"
)


def pub(name: str, content: str, version: int = 3, shown: str | None = None) -> PublishFile:
    address = ItemAddress("DNS", "release", "dnsmasq", name)
    return PublishFile(
        name, address, version, content, content_hash(content), content if shown is None else shown
    )


def facts(files: dict[str, str | None], target: str | None = "/x.versions/v1") -> HostFacts:
    return HostFacts("dns-1", "link" if target else "dir", target, files)


def test_facts_are_parsed_from_what_the_read_script_prints() -> None:
    encoded = base64.b64encode("a b\n\u00e9\n".encode()).decode()
    out = f"L /etc/dns.versions/v1\nF {encoded}\nM\n"
    got = parse_facts("dns-1", out, ["hosts", "dnsmasq.conf"])
    assert got.live == "link" and got.target == "/etc/dns.versions/v1"
    assert got.files == {"hosts": "a b\n\u00e9\n", "dnsmasq.conf": None}
    assert parse_facts("h", "D\nM\n", ["x"]).live == "dir"
    assert parse_facts("h", "N\nM\n", ["x"]).target is None
    with pytest.raises(Exception, match="h: unexpected answer"):
        parse_facts("h", "N\n", ["x"])


def test_a_hosts_change_is_a_reload_and_names_every_changed_record() -> None:
    plan = plan_host(
        DNS,
        facts({"hosts": "10.0.0.1 a.internal\n10.0.0.9 gone\n"}),
        [pub("hosts", "10.0.0.2 a.internal\n10.0.0.3 new\n")],
        lambda t: t,
    )
    assert plan.changed == ("hosts",) and plan.action == "reload"
    assert plan.previous == "/x.versions/v1"
    assert [(r.name, set(r.before), set(r.after)) for r in plan.records] == [
        ("a.internal", {"10.0.0.1"}, {"10.0.0.2"}),
        ("gone", {"10.0.0.9"}, set()),
        ("new", set(), {"10.0.0.3"}),
    ]
    assert "-10.0.0.1 a.internal" in plan.diff and "+10.0.0.3 new" in plan.diff
    assert "dns-1:hosts (live)" in plan.diff and "DNS/release/dnsmasq/hosts v3" in plan.diff


def test_a_dnsmasq_conf_change_is_a_restart_and_its_records_count() -> None:
    plan = plan_host(
        DNS,
        facts({"dnsmasq.conf": "port=53\n", "hosts": "10.0.0.1 a\n"}),
        [
            pub("dnsmasq.conf", "port=53\naddress=/b.internal/10.1.1.1\n"),
            pub("hosts", "10.0.0.1 a\n"),
        ],
        lambda t: t,
    )
    assert plan.changed == ("dnsmasq.conf",) and plan.action == "restart"
    assert [r.name for r in plan.records] == ["b.internal"]


def test_equal_files_are_no_change_and_a_new_file_diffs_from_dev_null() -> None:
    same = plan_host(DNS, facts({"hosts": "10.0.0.1 a\n"}), [pub("hosts", "10.0.0.1 a\n")], str)
    assert same.no_change and same.action is None and same.diff == ""
    new = plan_host(DNS, facts({"hosts": None}, None), [pub("hosts", "10.0.0.1 a\n")], str)
    assert new.diff.startswith("--- /dev/null") and new.live == "dir"


def test_diffs_mask_secrets_on_both_sides() -> None:
    plan = plan_host(
        NGINX,
        facts({"nginx.conf": "password old-secret;\n"}),
        [pub("nginx.conf", "password new-secret;\n", shown="password •••• (v2);\n")],
        lambda t: t.replace("old-secret", "•••• (v1)"),
    )
    assert "old-secret" not in plan.diff and "new-secret" not in plan.diff
    assert "-password •••• (v1);" in plan.diff and "+password •••• (v2);" in plan.diff
    assert plan.action == "reload"  # nginx re-reads everything on reload


def test_hosts_file_lines_dnsmasq_would_skip_are_refused_with_file_and_line() -> None:
    with pytest.raises(InputError, match=r"hosts line 2: 'not-an-ip' is not an IP address"):
        hosts_records("10.0.0.1 a\nnot-an-ip b\n")
    with pytest.raises(InputError, match=r"DNS/release/dnsmasq/hosts line 1: 10.0.0.1 has no"):
        check_records(DNS, [pub("hosts", "10.0.0.1\n")])
    check_records(NGINX, [pub("hosts", "anything\n")])  # only dnsmasq hosts files are parsed


def test_conf_records_and_changes() -> None:
    records = conf_records(
        "address=/a.x/b.x/10.0.0.1\nhost-record=c.x,d.x,10.0.0.2,fd00::2\n# address=/no/1.1.1.1\n"
    )
    assert records == {
        "a.x": {"10.0.0.1"},
        "b.x": {"10.0.0.1"},
        "c.x": {"10.0.0.2", "fd00::2"},
        "d.x": {"10.0.0.2", "fd00::2"},
    }
    assert hosts_records("10.0.0.1 A.Example. # comment\n") == {"a.example": {"10.0.0.1"}}
    assert changed_records({"a": frozenset({"1.1.1.1"})}, {"a": frozenset({"1.1.1.1"})}) == []


def test_the_digest_binds_content_and_variable_versions_and_shows_in_the_markdown() -> None:
    files = [pub("hosts", "10.0.0.1 a\n")]
    digest = content_digest(files, {"X": 1})
    assert digest != content_digest([pub("hosts", "10.0.0.2 a\n")], {"X": 1})
    assert digest != content_digest(files, {"X": 2})
    plan = plan_host(DNS, facts({"hosts": "10.0.0.9 a\n"}), files, str)
    same = plan_host(DNS, facts({"hosts": "10.0.0.1 a\n"}), files, str)
    text = plan_markdown(
        project="DNS", env="release", service="dnsmasq", files=files, digest=digest,
        plans=[plan, same.__class__(**{**same.__dict__, "host": "dns-2"})], requested_by="ann",
    )  # fmt: skip
    assert digest in text and "| `hosts` | v3 |" in text
    assert "1 host(s) to change, 1 already up to date: dns-2" in text
    assert "```diff" in text and "#### dns-1 (reload, 1 DNS record(s) to verify)" in text


def test_service_commands_fill_placeholders_inside_single_arguments() -> None:
    c = host_commands(DNS, "dns-1", "10.0.0.5", "/etc/dnsmasq.d/dns-1.versions/v2")
    assert c.live_dir == "/etc/dnsmasq.d/dns-1"
    assert c.check == [
        "dnsmasq",
        "--test",
        "--conf-file=/etc/dnsmasq.d/dns-1.versions/v2/dnsmasq.conf",
    ]
    assert c.reload == ["systemctl", "reload", "dnsmasq"]
    assert c.restart == ["systemctl", "restart", "dnsmasq"]
    n = host_commands(NGINX, "web-1", "10.0.0.6", "/s/v2")
    assert n.check == ["nginx", "-t", "-q", "-c", "/s/v2/nginx.conf"] and n.restart == n.reload
    custom = ConfigService(
        kind="command", dir="/srv/{host}/conf", check=["check-it", "{staged}", "$(rm -rf /)"],
        reload=["svc", "reload", "{host}"], verify=["probe", "{address}"],
    )  # fmt: skip
    c = host_commands(custom, "h", "10.0.0.7", "/srv/h/conf.versions/v9")
    assert c.check == ["check-it", "/srv/h/conf.versions/v9", "$(rm -rf /)"]
    assert c.restart == c.reload == ["svc", "reload", "h"] and c.verify == ["probe", "10.0.0.7"]
    assert action_for(DNS, ["hosts", "x.hosts"]) == "reload"
    assert action_for(DNS, ["hosts", "dnsmasq.conf"]) == "restart"


def test_host_scripts_are_constants_and_every_value_is_its_own_argument() -> None:
    odd = "/srv/we'ird $(touch pwned)"
    argv = config_files.stage_and_check(odd, "v1", 5, ["dnsmasq", "--test"])
    assert argv[:2] == ["sh", "-c"] and argv[2] == config_files.STAGE_SCRIPT
    assert argv[3:] == ["quayside", odd, odd + ".versions", "v1", "5", "dnsmasq", "--test"]
    swap = config_files.swap_and_run(odd, odd + ".versions/v1", odd + ".versions/i", ["r"])
    assert swap[2] == config_files.SWAP_SCRIPT and swap[4:] == [
        odd, odd + ".versions/v1", odd + ".versions/i", "r"
    ]  # fmt: skip
    assert config_files.read_files(odd, ["a b"])[4:] == [odd, "a b"]


def test_config_entries_are_validated_with_their_key_path(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="absolute"):
        ConfigService(kind="dnsmasq", dir="etc/dns", main_file="dnsmasq.conf")
    with pytest.raises(ValidationError, match="main_file: a dnsmasq service needs"):
        ConfigService(kind="dnsmasq", dir="/etc/dns")
    with pytest.raises(ValidationError, match="check, reload: a command service needs them"):
        ConfigService(kind="command", dir="/etc/x")
    with pytest.raises(ValidationError, match="relative path inside dir"):
        ConfigService(kind="nginx", dir="/etc/n", main_file="../nginx.conf")
    path = tmp_path / "quayside.yaml"
    env = {"hosts": [], "config": {"dnsmasq": {"kind": "dnsmasq", "dir": "/../x"}}}
    path.write_text(yaml.safe_dump({"apps": {"DNS": {"environments": {"release": env}}}}))
    with pytest.raises(ConfigError, match=r"apps\.DNS\.environments\.release\.config\.dnsmasq"):
        load_inventory(path)


@pytest.fixture
def store(tmp_path: Path) -> SqlConfigStore:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return SqlConfigStore(make_engine(url))


HOSTS = ItemAddress("DNS", "release", "dnsmasq", "hosts")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../etc/passwd", "path traversal"),
        ("/etc/passwd", "absolute"),
        ("a\x00b", "NUL byte"),
        ("a\nb", "newline"),
    ],
)
def test_bad_filenames_are_refused_before_anything_runs(
    store: SqlConfigStore, name: str, why: str
) -> None:
    items.save(store, HOSTS, "10.0.0.1 a\n", author="ann", base_version=0)
    with pytest.raises(InputError, match=why):
        choose_items(store, "DNS", "release", "dnsmasq", [name], None)
    with pytest.raises(InputError, match=why):
        choose_items(store, "DNS", "release", "dnsmasq", None, {name: 1})


def test_unknown_files_services_and_versions_are_named(store: SqlConfigStore) -> None:
    items.save(store, HOSTS, "10.0.0.1 a\n", author="ann", base_version=0)
    with pytest.raises(NotFoundError, match="DNS/release/nginx has no config files"):
        choose_items(store, "DNS", "release", "nginx", None, None)
    with pytest.raises(NotFoundError, match="dnsmasq/other is not a config file") as unknown:
        choose_items(store, "DNS", "release", "dnsmasq", ["other"], None)
    assert unknown.value.hint == "files of dnsmasq: hosts"
    with pytest.raises(InputError, match="versions.hosts: must be a version number"):
        choose_items(store, "DNS", "release", "dnsmasq", None, {"hosts": 0})
    assert choose_items(store, "DNS", "release", "dnsmasq", None, {"hosts": 1}) == [(HOSTS, 1)]
    with pytest.raises(FileTooLarge, match="limit of 1048576 bytes"):
        items.save(store, HOSTS, "x" * (1024 * 1024 + 1), author="ann", base_version=1)


def test_a_template_reaching_for_internals_fails_in_the_sandbox(
    store: SqlConfigStore, tmp_path: Path
) -> None:
    conf = ItemAddress("DNS", "release", "dnsmasq", "dnsmasq.conf")
    items.save(store, conf, "x={{ cycler.__init__.__globals__ }}\n", author="a", base_version=0,
               template=True)  # fmt: skip
    with pytest.raises(TemplateError):
        rendered_files(store, [(conf, None)], SecretBox.from_home(tmp_path / "h"), None)


def test_rendered_files_carry_masked_text_and_old_secret_values_are_masked(
    store: SqlConfigStore, tmp_path: Path
) -> None:
    box = SecretBox.from_home(tmp_path / "home")
    env = EnvAddress("DNS", "release")
    variables.set_value(store, box, env, "PW", "first-pw", author="a", secret=True)
    variables.set_value(store, box, env, "PW", "second-pw", author="a", secret=True)
    conf = ItemAddress("DNS", "release", "dnsmasq", "auth.conf")
    items.save(store, conf, "pw={{ PW }}\n", author="a", base_version=0, template=True)
    [file], used = rendered_files(store, [(conf, None)], box, None)
    assert file.content == "pw=second-pw\n" and "second-pw" not in file.shown
    assert used == {"PW": 2}
    redact = secret_masker(store, box, env, None)
    assert redact("pw=first-pw\n") == "pw=•••• (v1)\n"
    assert redact("pw=second-pw\n") == "pw=•••• (v2)\n"
