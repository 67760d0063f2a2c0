"""An environment's ``default_ref``: a branch as it is, or ``latest-tag`` — the newest tag of
the app's repository (a real bare repository, through the app's git mirror) that matches one
of the app's tag rules for that environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from quayside.errors import ConfigError, InputError, QuaysideError
from quayside.gateway.config import GatewayConfig
from quayside.gateway.context import GatewayContext
from quayside.gateway.default_ref import ChosenRef, default_ref, newest_matching
from quayside.inventory import parse_inventory
from quayside.settings import Settings
from quayside.source.mirror import GitMirror
from testbed.require import need_binary


def git(cwd: Path, *args: str, when: str = "2024-01-01T00:00:00Z") -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Tess",
        "GIT_AUTHOR_EMAIL": "tess@example.com",
        "GIT_COMMITTER_NAME": "Tess",
        "GIT_COMMITTER_EMAIL": "tess@example.com",
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def make_tagged_repo(bare: Path, tags: list[tuple[str, str, bool]]) -> None:
    """A bare repository at ``bare`` with one commit per ``(tag, ISO date, annotated)``, made
    and tagged at that date (the creation date git sorts tags by), pushed with branch main."""
    need_binary("git", "git")
    work = bare.parent / (bare.name + ".work")
    work.mkdir(parents=True)
    git(bare.parent, "init", "--quiet", "--bare", "-b", "main", str(bare))
    git(work, "init", "--quiet", "-b", "main")
    for i, (tag, when, annotated) in enumerate(tags):
        (work / "file.txt").write_text(f"{i}\n")
        git(work, "add", "file.txt", when=when)
        git(work, "commit", "--quiet", "-m", f"commit {i}", when=when)
        git(work, "tag", *(["-a", "-m", tag] if annotated else []), tag, when=when)
    git(work, "push", "--quiet", "--tags", str(bare), "main")


TAGS = [
    ("dev-9", "2024-01-01T00:00:00Z", False),
    ("qa-5", "2024-01-03T00:00:00Z", True),
    ("dev-10", "2024-01-02T00:00:00Z", True),
    ("dev-11", "2024-01-02T00:00:00Z", False),  # same date as dev-10: version order decides
    ("release-1", "2024-01-04T00:00:00Z", True),
]


def test_mirror_lists_tags_newest_first(tmp_path: Path) -> None:
    make_tagged_repo(tmp_path / "origin.git", TAGS)
    mirror = GitMirror(tmp_path / "mirrors", str(tmp_path / "origin.git"))
    mirror.sync()
    assert mirror.tags() == ["release-1", "qa-5", "dev-11", "dev-10", "dev-9"]


def test_newest_matching() -> None:
    tags = ["release-1", "qa-5", "dev-11", "dev-10"]
    assert newest_matching(tags, ["^dev-"]) == "dev-11"
    assert newest_matching(tags, ["^dev-", "^qa-"]) == "qa-5"
    assert newest_matching(tags, ["^hotfix-"]) is None
    assert newest_matching(["dev-$(id)", "dev-1"], ["^dev-"]) == "dev-1"  # never deployable


def context(tmp_path: Path, inventory: str) -> GatewayContext:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "quayside.yaml"
    path.write_text(inventory.replace("{home}", str(tmp_path)))
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        inventory_path=path,
        gateway_host="127.0.0.1",
        gateway_port=1,
        prefect_host="127.0.0.1",
        prefect_port=1,
    )
    return GatewayContext(settings, GatewayConfig())


INVENTORY = """
hosts: {w: {address: 127.0.0.98}}
apps:
  docs:
    repo: "{home}/git/docs.git"
    tag_rules:
      - {pattern: "^dev-", environment: dev}
      - {pattern: "^qa-", environment: test}
      - {pattern: "^release-", environment: prod}
    environments:
      dev: {hosts: [w], default_ref: latest-tag}
      test: {hosts: [w], default_ref: main}
      prod: {hosts: [w]}
"""


def test_default_ref_of_an_environment(tmp_path: Path) -> None:
    make_tagged_repo(tmp_path / "git" / "docs.git", TAGS)
    ctx = context(tmp_path, INVENTORY)
    assert default_ref(ctx, "docs", "dev") == ChosenRef("dev-11", "newest tag matching ^dev-")
    assert default_ref(ctx, "docs", "test") == ChosenRef("main", "default_ref of docs/test")
    assert default_ref(ctx, "docs", "prod") is None
    # a new tag is found: the mirror is fetched each time
    work = tmp_path / "git" / "docs.git.work"
    git(work, "tag", "dev-12", when="2024-02-01T00:00:00Z")
    git(work, "push", "--quiet", "--tags", str(tmp_path / "git" / "docs.git"))
    assert default_ref(ctx, "docs", "dev") == ChosenRef("dev-12", "newest tag matching ^dev-")


def test_no_matching_tag_or_no_repository_says_to_give_the_ref(tmp_path: Path) -> None:
    make_tagged_repo(tmp_path / "git" / "docs.git", [("qa-1", "2024-01-01T00:00:00Z", False)])
    ctx = context(tmp_path, INVENTORY)
    with pytest.raises(InputError) as info:
        default_ref(ctx, "docs", "dev")
    assert info.value.message == (
        "no tag of docs matches ^dev- (apps.docs.environments.dev.default_ref: latest-tag)"
    )
    assert "deploy docs to dev <ref>" in str(info.value.hint)
    gone = context(tmp_path / "other", INVENTORY)
    with pytest.raises(QuaysideError) as failed:
        default_ref(gone, "docs", "dev")
    assert failed.value.message.startswith("cannot list the tags of docs (")
    assert "git clone of " in failed.value.message
    assert failed.value.message.endswith("give the ref: deploy docs to dev <ref>")


def test_latest_tag_needs_a_tag_rule_and_a_branch_must_be_a_safe_ref() -> None:
    with pytest.raises(ConfigError) as info:
        parse_inventory(
            INVENTORY.replace(
                "prod: {hosts: [w]}", "prod: {hosts: [w], default_ref: latest-tag}"
            ).replace('      - {pattern: "^release-", environment: prod}\n', "")
        )
    assert "apps.docs.environments.prod.default_ref: latest-tag needs a tag rule for " in str(
        info.value
    )
    with pytest.raises(
        ConfigError, match=r"apps.docs.environments.test.default_ref: invalid git ref"
    ):
        parse_inventory(INVENTORY.replace("default_ref: main", "default_ref: '--upload-pack=x'"))
