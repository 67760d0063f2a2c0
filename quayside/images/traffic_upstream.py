"""The traffic switch of an image release: nginx's upstream file on the Docker host, written
and published through config publish's host code (:mod:`quayside.config.host_publish`: stage
beside the live set, ``nginx -t``, swap, reload, verify, restore on failure) - one code path
for "write a config, validate, swap, reload, verify".

The upstream file names one server, the slot of the container that should take traffic, so
what a host serves is read back from that file (:func:`slot_in_upstream`).
"""

from __future__ import annotations

import re

from quayside.config.address import ItemAddress
from quayside.config.host_publish import HostJob, publish_host, read_host, restore_host
from quayside.config.publish_plan import HostFacts, HostPlan, PublishFile
from quayside.config.records import content_hash
from quayside.executors.base import Executor
from quayside.inventory.config_services import ConfigService
from quayside.inventory.image_models import ImageTraffic
from quayside.release.host_report import HostReport

TRAFFIC_SERVICE = "traffic"
"""The service name the upstream file is published under (its address, its messages)."""
_SERVER = re.compile(r"^\s*server\s+(\S+?)\s*(?:\s[^;]*)?;", re.MULTILINE)


def upstream_text(traffic: ImageTraffic, slot: str, about: str) -> str:
    """The upstream file sending ``traffic.upstream`` to ``slot`` (``about`` says what runs
    there, as a comment)."""
    comment = " ".join(about.split())[:200]
    return (
        f"# written by quayside: {comment}\n"
        f"upstream {traffic.upstream} {{\n    server {slot} max_fails=0;\n}}\n"
    )


def slot_in_upstream(text: str | None) -> str | None:
    """The ``address:port`` the upstream file sends traffic to (None: no such file/line)."""
    if not text:
        return None
    match = _SERVER.search(text)
    return match.group(1) if match else None


def traffic_service(traffic: ImageTraffic) -> ConfigService:
    """The nginx config service the upstream file is published to."""
    return ConfigService(
        kind="nginx",
        dir=traffic.dir,
        main_file=traffic.main_file,
        check=traffic.check,
        reload=traffic.reload,
        verify_url=traffic.url,
        keep_versions=traffic.keep_versions,
    )


def read_upstream(executor: Executor, traffic: ImageTraffic) -> HostFacts:
    """What the host's nginx has live (one round trip)."""
    return read_host(executor, traffic_service(traffic), [traffic.upstream_file])


def upstream_job(
    *,
    host: str,
    address: str,
    app: str,
    env: str,
    traffic: ImageTraffic,
    facts: HostFacts,
    text: str,
    version_id: str,
) -> HostJob:
    """The config publish job writing ``text`` as the upstream file on ``host``."""
    name = traffic.upstream_file
    item = PublishFile(
        name, ItemAddress(app, env, TRAFFIC_SERVICE, name), 0, text, content_hash(text), text
    )
    plan = HostPlan(
        host,
        changed=(name,),
        diff="",
        action="reload",
        records=(),
        previous=facts.target,
        live=facts.live,
    )
    return HostJob(host, address, traffic_service(traffic), plan, (item,), version_id)


def previous_set(job: HostJob) -> str | None:
    """The directory a restore points nginx back at (as :func:`publish_host` reports it)."""
    return {"link": job.plan.previous, "dir": job.initial, "none": None}[job.plan.live]


def switch_upstream(executor: Executor, job: HostJob) -> HostReport:
    """Publish the upstream file: stage, check, swap, reload, verify; restored on failure."""
    return publish_host(executor, job)


def restore_upstream(executor: Executor, job: HostJob) -> str:
    """Point nginx back at the upstream file it had before ``job`` (reload, verify)."""
    return restore_host(executor, job, previous_set(job))
