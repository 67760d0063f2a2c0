"""What `quayside config publish` checks before any run exists: the project, environment,
service (the only one when none is named) and canary, each refusal naming the thing and the
next step."""

from __future__ import annotations

import pytest

from quayside.config.publish_target import publish_target
from quayside.errors import InputError, NotFoundError
from quayside.inventory.models import Inventory

DNS = {"kind": "dnsmasq", "dir": "/etc/dnsmasq.d/q", "main_file": "dnsmasq.conf"}
NGINX = {"kind": "nginx", "dir": "/etc/nginx/q", "main_file": "nginx.conf",
         "verify_url": "http://{address}/"}  # fmt: skip


def inventory() -> Inventory:
    hosts = {f"dns-{i}": {"address": f"10.0.0.{i}"} for i in (1, 2, 3)}
    return Inventory.model_validate(
        {
            "hosts": hosts,
            "apps": {
                "DNS": {
                    "environments": {
                        "release": {"hosts": list(hosts), "config": {"dnsmasq": DNS}},
                        "edge": {"hosts": ["dns-1"], "config": {"dnsmasq": DNS, "nginx": NGINX}},
                        "bare": {"hosts": ["dns-1"]},
                    }
                }
            },
        }
    )


def test_a_good_publish_names_its_service_and_host_count() -> None:
    got = publish_target(inventory(), "DNS", "release", None, 2)
    assert (got.service, got.hosts) == ("dnsmasq", 3)
    assert publish_target(inventory(), "DNS", "edge", "nginx", None).service == "nginx"


@pytest.mark.parametrize(
    ("args", "error", "message", "hint"),
    [
        (("web", "release", None, None), NotFoundError, "unknown project 'web' (projects: DNS)",
         "quayside check"),
        (("DNS", "prod", None, None), NotFoundError,
         "project 'DNS' has no environment 'prod' (environments: bare, edge, release)",
         "quayside check"),
        (("DNS", "release", "nginx", None), NotFoundError,
         "DNS/release publishes no config service 'nginx' (services: dnsmasq)",
         "add apps.DNS.environments.release.config.nginx to quayside.yaml"),
        (("DNS", "bare", None, None), NotFoundError, "DNS/bare publishes no config service",
         "add apps.DNS.environments.bare.config.SERVICE"),
        (("DNS", "edge", None, None), InputError, "publishes 2 services (dnsmasq, nginx): name one",
         "quayside config publish DNS edge dnsmasq"),
        (("DNS", "release", None, 3), InputError, "--canary 3: DNS/release has 3 host(s)",
         "some of the hosts first"),
        (("DNS", "release", None, 0), InputError, "give 1 to 2", "then to the rest"),
        (("DNS", "edge", "nginx", 1), InputError, "publish without --canary", "canary"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_it_and_the_next_step(
    args: tuple[str, str, str | None, int | None], error: type[Exception], message: str, hint: str
) -> None:
    with pytest.raises(error) as info:
        publish_target(inventory(), *args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert hint in (getattr(info.value, "hint", None) or "")
