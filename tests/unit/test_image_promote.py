"""Image promotion as data: bad input refused in one line before any registry is asked, what
the target environment runs now and the commits of both builds read from the ledger, the
approval description (digest, version, what runs now, commit range, copy plan), the tag the
target gets, the copy figures and the ``promote`` detail written on a finished release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from quayside.errors import InputError
from quayside.images.image_release_target import ImageChoice
from quayside.images.promote_plan import commit_range, copy_details, promote_markdown
from quayside.images.promote_target import (
    PromoteChoice,
    Running,
    checked_checksum,
    resolve_promote,
    running_in,
)
from quayside.inventory.models import Inventory
from quayside.ledger.db import make_engine, migrate
from quayside.ledger.models import ReleaseKind, ReleaseStatus
from quayside.ledger.release_details import add_release_detail
from quayside.ledger.release_queries import get_release
from quayside.ledger.releases import finish_release, start_release
from quayside.registry import CopyResult, ImageLocation, RegistrySettings
from quayside.runs.secrets import secret_value

D1, D2 = ("sha256:" + c * 64 for c in "12")
C1, C2 = "a1b2c3d4e5f6a7b8c9d0" * 2, "0f9e8d7c6b5a4f3e2d1c" * 2
# nothing listens there: every refusal below happens before a registry is asked
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    return make_engine(url)


def _inventory() -> Inventory:
    return Inventory.model_validate(
        {
            "apps": {
                "shop": {
                    "image": {"build": {"artifact_path": "/app/shop.war"}},
                    "environments": {
                        "test": {"registry": {"url": NOWHERE, "repository": "team/shop"}},
                        "prod": {"registry": {"url": NOWHERE, "repository": "prod/shop"}},
                    },
                },
                "web": {"environments": {"test": {}, "prod": {}}},
            },
        }
    )


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ("v1;touch /tmp/x", "is not a version"),
        ("$(id)", "is not a version"),
        ("1.0 beta", "is not a version"),
        ("sha256:zz", "is not a sha256"),
    ],
)
def test_a_bad_version_or_digest_is_refused_in_one_line(
    engine: Engine, given: str, match: str
) -> None:
    with pytest.raises(InputError, match=match) as caught:
        resolve_promote(engine, _inventory(), "shop", "test", "prod", given, secrets=secret_value)
    assert "\n" not in str(caught.value.message)


def test_one_environment_twice_or_a_non_image_app_is_refused(engine: Engine) -> None:
    with pytest.raises(InputError, match="both 'prod'"):
        resolve_promote(engine, _inventory(), "shop", "prod", "prod", "v1", secrets=secret_value)
    with pytest.raises(InputError, match="web is not an image app"):
        resolve_promote(engine, _inventory(), "web", "test", "prod", "v1", secrets=secret_value)
    with pytest.raises(InputError, match="no environment 'staging'"):
        resolve_promote(engine, _inventory(), "shop", "test", "staging", "v1", secrets=secret_value)


def _release(
    engine: Engine, env: str, kind: ReleaseKind, version: str, digest: str, **more: Any
) -> int:
    status = more.pop("status", ReleaseStatus.succeeded)
    row = start_release(
        engine, "shop", env, kind, requested_by="ann", version=version, image_digest=digest,
        **more,
    )  # fmt: skip
    finish_release(engine, row.id, status)
    return int(row.id)


def test_what_runs_now_is_the_latest_succeeded_image_release(engine: Engine) -> None:
    assert running_in(engine, "shop", "prod") is None
    first = _release(engine, "prod", ReleaseKind.image, "v1", D1,
                     details={"artifact_sha256": "ab" * 32})  # fmt: skip
    _release(engine, "prod", ReleaseKind.image, "v2", D2, status=ReleaseStatus.failed)
    _release(engine, "prod", ReleaseKind.image_build, "v3", D2)  # a build serves nothing
    assert running_in(engine, "shop", "prod") == Running(first, "v1", D1)
    assert checked_checksum(engine, "shop", "prod", D1) == "ab" * 32
    assert checked_checksum(engine, "shop", "prod", D2) is None


def _choice(**more: Any) -> PromoteChoice:
    values: dict[str, Any] = {
        "app": "shop", "from_env": "test", "to_env": "prod",
        "image": ImageChoice("v1.4.2", D2, f"reg:5000/team/shop@{D2}", None, None),
        "source": ImageLocation(RegistrySettings(url="http://reg-test:5000"), "team/shop"),
        "target": ImageLocation(RegistrySettings(url="https://reg-prod"), "prod/shop"),
        "running": Running(7, "v1.4.1", D1), "commit": C2, "running_commit": C1,
    }  # fmt: skip
    values.update(more)
    return PromoteChoice(**values)


def test_the_commit_range_runs_from_what_runs_now_to_the_promoted_build() -> None:
    assert commit_range(_choice()) == f"{C1[:12]}..{C2[:12]}"
    assert commit_range(_choice(running=None, running_commit=None)) == (
        f"{C2[:12]} (nothing runs in prod yet)"
    )
    assert commit_range(_choice(running_commit=None)) == (
        f"?..{C2[:12]} (no build recorded for prod's image's digest)"
    )
    assert "the same commit" in commit_range(_choice(running_commit=C2))


def test_the_approval_description_shows_digest_version_what_runs_commits_and_copy() -> None:
    text = promote_markdown(_choice(), "image sha256:22…: 1 manifest(s), 3 blob(s) — "
                            "1 present, 0 to mount, 2 to upload (4.2 MB)", "ann")  # fmt: skip
    assert text.startswith("## Promote shop from test to prod\n")
    assert "- version: `v1.4.2`" in text
    assert f"- digest: `{D2}`" in text
    assert "- from: `reg-test:5000/team/shop` (test)" in text
    assert "- to: `reg-prod/prod/shop` (prod), tag `v1.4.2`" in text
    assert f"- runs now in prod: `v1.4.1` (`{D1}`, release #7)" in text
    assert f"- commits: `{C1[:12]}..{C2[:12]}`" in text
    assert "1 present, 0 to mount, 2 to upload (4.2 MB)" in text
    assert "- requested by: ann" in text
    empty = promote_markdown(_choice(running=None, running_commit=None), "plan", "ann")
    assert "- runs now in prod: nothing (no image release succeeded there yet)" in empty


def test_the_target_is_tagged_with_the_version_only_where_it_is_a_tag() -> None:
    assert _choice().tag == "v1.4.2"
    unversioned = ImageChoice(f"sha256-{D2[7:19]}", D2, "x", None, None)
    assert _choice(image=unversioned).tag is None
    plus = ImageChoice("v1.4.2+build.7", D2, "x", None, None)
    assert _choice(image=plus).tag is None
    assert "tag" not in promote_markdown(_choice(image=plus), "plan", "ann").split("- to:")[1]


def test_the_copy_figures_and_the_promote_detail_on_the_image_release(engine: Engine) -> None:
    result = CopyResult(D2, "reg-prod/prod/shop", manifests=[D2], present=["sha256:" + "3" * 64],
                        uploaded=["sha256:" + "4" * 64, "sha256:" + "5" * 64],
                        bytes_uploaded=4200)  # fmt: skip
    copied = copy_details(_choice(), result)
    assert copied == {
        "from_env": "test", "to_env": "prod", "digest": D2, "version": "v1.4.2",
        "source": "reg-test:5000/team/shop", "target": "reg-prod/prod/shop", "tag": "v1.4.2",
        "blobs_present": 1, "blobs_mounted": 0, "blobs_uploaded": 2, "bytes_uploaded": 4200,
        "manifests": 1,
    }  # fmt: skip
    row = _release(engine, "prod", ReleaseKind.image, "v1.4.2", D2, details={"serves": "x"})
    add_release_detail(engine, row, "promote", {**copied, "promotion": 3})
    details = get_release(engine, row).details
    assert details["serves"] == "x" and details["promote"]["promotion"] == 3
    assert details["promote"]["blobs_uploaded"] == 2


def test_a_promotion_is_authorized_on_the_environment_it_promotes_to() -> None:
    from quayside.auth.run_scope import scope_of_run

    data = _inventory().model_dump(exclude_none=True)
    data["hosts"] = {"web-1": {"address": "10.0.0.5"}}
    data["apps"]["shop"]["environments"]["prod"]["hosts"] = ["web-1"]
    scope = scope_of_run(
        Inventory.model_validate(data), deployment="image-promote", kind="app-env",
        minimum_role="DEVELOPER",
        params={"app": "shop", "from_env": "test", "to_env": "prod", "version_or_digest": "v1"},
    )  # fmt: skip
    assert (scope.app, scope.env) == ("shop", "prod")
