"""The rule of what ``rollback APP ENV`` starts (quayside.release.rollback_kind), for the CLI
and chat alike: the kind asked wins, else the kind of the release named by id, else of the
newest serving release; kinds without a rollback are refused, never treated as code."""

from __future__ import annotations

import pytest

from quayside.errors import InputError
from quayside.ledger.models import ReleaseKind
from quayside.release.rollback_kind import DEPLOYMENTS, SERVING, rollback_kind


@pytest.mark.parametrize(
    ("newest", "expected"),
    [
        (ReleaseKind.deploy, "git"),
        (ReleaseKind.rollback, "git"),  # a rollback of code rolls further back as code
        (ReleaseKind.config, "config"),
        (ReleaseKind.image, "image"),
        (None, "git"),  # nothing released yet: the code rollback says so
    ],
)
def test_the_newest_serving_release_decides(newest: ReleaseKind | None, expected: str) -> None:
    assert rollback_kind(None, None, newest) == expected


def test_the_kind_asked_then_the_release_named_win_over_the_newest() -> None:
    assert rollback_kind("image", ReleaseKind.config, ReleaseKind.deploy) == "image"
    assert rollback_kind(None, ReleaseKind.config, ReleaseKind.image) == "config"
    assert rollback_kind(None, "deploy", "image") == "git"  # the ledger's values as text


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        (ReleaseKind.hello, "a hello release changes nothing an app serves"),
        (ReleaseKind.plugin, "plugin provisioning has no rollback"),
        (ReleaseKind.image_build, "an image build serves nothing"),
        (ReleaseKind.image_promote, "roll back the image release it started"),
    ],
)
def test_kinds_without_a_rollback_are_refused_not_treated_as_code(
    kind: ReleaseKind, why: str
) -> None:
    with pytest.raises(InputError) as newest:
        rollback_kind(None, None, kind)
    assert f"the newest release is a {kind.value} release, which cannot be rolled back" in str(
        newest.value
    )
    assert why in str(newest.value) and "--to ID" in (newest.value.hint or "")
    with pytest.raises(InputError, match=f"the release named is a {kind.value} release"):
        rollback_kind(None, kind, ReleaseKind.deploy)


@pytest.mark.parametrize("asked", ["plugin", "hello", "GIT", ""])
def test_an_unknown_kind_asked_is_refused(asked: str) -> None:
    with pytest.raises(InputError, match="is neither git, config nor image"):
        rollback_kind(asked, None, ReleaseKind.deploy)


def test_every_kind_has_its_deployment_and_builds_and_promotions_serve_nothing() -> None:
    assert DEPLOYMENTS == {"git": "rollback", "config": "config-publish", "image": "image-release"}
    assert ReleaseKind.image_build not in SERVING and ReleaseKind.image_promote not in SERVING
    assert ReleaseKind.hello in SERVING  # so that a newest hello release is refused, not skipped
