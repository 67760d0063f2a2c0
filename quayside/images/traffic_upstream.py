"""The traffic switch of an image release: nginx's upstream file on the Docker host, written
and published through config publish's host code (:mod:`quayside.config.host_publish`: stage
beside the live set, ``nginx -t``, swap, reload, verify, restore on failure) - one code path
for "write a config, validate, swap, reload, verify".

The upstream file names one server, the slot of the container that should take traffic, so
what a host serves is read back from that file (:func:`slot_in_upstream`). It also makes
nginx name the server of every answer (``X-Quayside-Upstream``, the upstream's own header of
that name hidden): after the publish's own verify, the switch wants the new slot named there
(:mod:`quayside.images.image_release_upstream_check`), so an old container still answering
through a reload that did not take fails the switch, and the upstream is restored.
"""

from __future__ import annotations

import re
from dataclasses import replace

from quayside.config.address import ItemAddress
from quayside.config.host_publish import HostJob, publish_host, read_host, restore_host
from quayside.config.publish_plan import HostFacts, HostPlan, PublishFile
from quayside.config.publish_verify import VerifyFailed
from quayside.config.records import content_hash
from quayside.config.service_commands import fill
from quayside.executors.base import Executor
from quayside.images.image_release_upstream_check import UPSTREAM_HEADER, verify_upstream
from quayside.inventory.config_services import ConfigService
from quayside.inventory.image_models import ImageTraffic
from quayside.release.host_report import HostReport

TRAFFIC_SERVICE = "traffic"
"""The service name the upstream file is published under (its address, its messages)."""
_SERVER = re.compile(r"^\s*server\s+(\S+?)\s*(?:\s[^;]*)?;", re.MULTILINE)


def upstream_text(traffic: ImageTraffic, slot: str, about: str) -> str:
    """The upstream file sending ``traffic.upstream`` to ``slot`` (``about`` says what runs
    there, as a comment), with the header naming the server of each answer."""
    comment = " ".join(about.split())[:200]
    return (
        f"# written by quayside: {comment}\n"
        f"upstream {traffic.upstream} {{\n    server {slot} max_fails=0;\n}}\n"
        f"proxy_hide_header {UPSTREAM_HEADER};\n"
        f"add_header {UPSTREAM_HEADER} $upstream_addr always;\n"
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


def _check_url(job: HostJob) -> str:
    url = job.service.verify_url
    assert url is not None, "an image release's traffic always has a url"
    return fill([url], {"host": job.host, "address": job.address, "dir": job.live})[0]


def switch_upstream(executor: Executor, job: HostJob, slot: str) -> HostReport:
    """Publish the upstream file (stage, check, swap, reload, verify; restored on failure),
    then check that nginx's answers come from ``slot`` (the new container); restored when
    they do not."""
    report = publish_host(executor, job)
    if not report.ok:
        return report
    try:
        sent = verify_upstream(_check_url(job), slot, timeout_s=job.service.verify_timeout_s)
    except VerifyFailed as e:
        note = restore_upstream(executor, job)
        return replace(report, status="failed", step="verify", message=f"{e}; {note}",
                       switched=False)  # fmt: skip
    return replace(report, message=f"{report.message}; {slot} answered ({sent} requests)")


def restore_upstream(executor: Executor, job: HostJob, slot: str | None = None) -> str:
    """Point nginx back at the upstream file it had before ``job`` (reload, verify) and,
    given the old container's ``slot``, check that nginx's answers no longer name another
    slot (answers naming none pass: the file put back may predate the header).

    A restore that could not check the old slot starts its note with ``RESTORE FAILED``.
    """
    note = restore_host(executor, job, previous_set(job))
    if slot is None or note.startswith("RESTORE FAILED"):
        return note
    try:
        verify_upstream(
            _check_url(job),
            slot,
            timeout_s=job.service.verify_timeout_s,
            unnamed_ok=True,
            who="the old container",
        )
    except VerifyFailed as e:
        return f"RESTORE FAILED: {e} ({note})"
    return f"{note}; {slot} answers again"
