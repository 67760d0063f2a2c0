"""Each app's image versions as the ledger keeps them (SQLite and PostgreSQL): only its
succeeded image-build releases count, in every environment, newest first; the next version
after them for a ref that is not a version, the tag's own for a version tag."""

from __future__ import annotations

from sqlalchemy import Engine

from quayside.images.versions import choose_version
from quayside.ledger.image_builds import built_images
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.releases import finish_release, mark_running, start_release


def record(
    engine: Engine,
    app: str,
    env: str,
    version: str,
    status: ReleaseStatus = ReleaseStatus.succeeded,
    kind: ReleaseKind = ReleaseKind.image_build,
) -> int:
    row = start_release(
        engine, app, env, kind, requested_by="ci", version=version,
        commit_sha=version.replace(".", "") * 8, details={"image": f"r/{app}:{version}"},
    )  # fmt: skip
    mark_running(engine, row.id)
    finish_release(engine, row.id, status)
    return int(row.id)


def test_versions_per_app_from_succeeded_builds_only(ledger_engine: Engine) -> None:
    record(ledger_engine, "shop", "test", "1.2.0")
    record(ledger_engine, "shop", "test", "1.10.0")
    record(ledger_engine, "shop", "qa", "1.10.1")  # another build environment, same app
    record(ledger_engine, "shop", "test", "1.10.2", ReleaseStatus.failed)  # never built
    record(ledger_engine, "shop", "test", "9.9.9", kind=ReleaseKind.deploy)  # not an image
    record(ledger_engine, "blog", "test", "7.0.0")  # another app

    built = built_images(ledger_engine, "shop")
    assert [(b.env, b.version) for b in built] == [
        ("qa", "1.10.1"),
        ("test", "1.10.0"),
        ("test", "1.2.0"),
    ]
    assert built[0].details["image"] == "r/shop:1.10.1"
    assert built[0].commit_sha == "1101" * 8

    recorded = [b.version for b in built]
    assert choose_version("main", ref_is_tag=False, recorded=recorded).tag == "1.10.2"
    assert choose_version("v2.0.0", ref_is_tag=True, recorded=recorded).tag == "2.0.0"
    assert choose_version("main", ref_is_tag=False, recorded=[]).tag == "0.0.1"
