"""infra/hooks/post-receive: a real ``git push`` of tags to a bare repository with the hook
installed reports them to the gateway, which starts the deploy run (seen through the Prefect
API); a gateway that is down never fails the push."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from quayside.runs import read_run
from quayside.triggers.gitlab import dedupe_key
from quayside.triggers.idempotency import TAG_TRIGGERS, scoped_key
from testbed.platform import PROJECT_DIR, count_runs, free_port
from testbed.require import need_binary
from tests.platform.test_gateway_server import DEPLOY, Gateway, gateway_fixture  # noqa: F401

pytestmark = [pytest.mark.xdist_group("platform-2"), pytest.mark.prefect]

HOOK = PROJECT_DIR / "infra" / "hooks" / "post-receive"


def git(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    )


def make_repos(tmp_path: Path, url: str, token: str) -> tuple[Path, Path]:
    need_binary("git", "git")
    tmp_path.mkdir(parents=True, exist_ok=True)
    bare = tmp_path / "site.git"
    work = tmp_path / "work"
    git("init", "--bare", "-q", str(bare), cwd=tmp_path)
    shutil.copy(HOOK, bare / "hooks" / "post-receive")
    (bare / "quayside-hook.conf").write_text(f"# test\nurl={url}\ntoken={token}\n")
    git("init", "-q", str(work), cwd=tmp_path)
    for key, value in (("user.email", "t@example.com"), ("user.name", "Tess")):
        git("config", key, value, cwd=work)
    (work / "README").write_text("hello\n")
    git("add", "README", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    return bare, work


def push_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("QUAYSIDE_GATEWAY_URL", "QUAYSIDE_HOOK_TOKEN", "QUAYSIDE_APP", "GL_PROJECT_PATH"):
        env.pop(var, None)
    env["USER"] = "tess"
    return env


def test_git_push_of_a_tag_starts_the_deploy_run(gateway: Gateway, tmp_path: Path) -> None:
    bare, work = make_repos(tmp_path, gateway.url, gateway.tokens["githook"])
    git("tag", "-a", "qa-1", "-m", "annotated tag", cwd=work)
    git("tag", "nightly-1", cwd=work)  # matches no rule of app site
    done = git(
        "push",
        "-q",
        "origin",
        "HEAD:refs/heads/main",
        "qa-1",
        "nightly-1",
        cwd=work,
        env=push_env(),
    )
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert "qa-1: started: " in done.stderr, done.stderr
    assert "nightly-1: ignored: tag 'nightly-1' matches no tag rule" in done.stderr
    run_url = next(line for line in done.stderr.splitlines() if "qa-1: started" in line)
    run_id = run_url.rsplit("/", 1)[1].strip()
    gateway.runs.append(run_id)
    status = read_run(run_id)
    assert status.parameters.get("requested_by") == "githook"  # the token user asks
    assert "pusher:tess" in status.tags  # who the git server says pushed: information
    assert "trigger:git-hook" in status.tags
    key = scoped_key(
        user=TAG_TRIGGERS,
        deployment=DEPLOY,
        app="site",
        env="test",
        key=dedupe_key("site", "srv/git/site", "qa-1", commit),  # app site's repo path
    )
    api = os.environ["PREFECT_API_URL"]
    assert count_runs(api, key) == 1
    # pushing the same tag again (delete + re-push at the same commit) starts nothing new,
    # and the pusher is told which run the tag already has
    git("push", "-q", "origin", ":refs/tags/qa-1", cwd=work, env=push_env())
    again = git("push", "-q", "origin", "qa-1", cwd=work, env=push_env())
    assert "qa-1: started" not in again.stderr
    line = next(x for x in again.stderr.splitlines() if "qa-1: already" in x)
    state = read_run(run_id).state_name
    assert line.endswith(f"/runs/flow-run/{run_id} ({state})") or (
        f"/runs/flow-run/{run_id} (" in line  # the run moved on between the two reads
    ), line
    assert "qa-1: already running: " in line or "qa-1: already ran: " in line
    assert count_runs(api, key) == 1
    assert DEPLOY in {"git-deploy", "hello-release"}


def test_push_succeeds_when_the_gateway_is_down_or_refuses(
    gateway: Gateway, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    _, work = make_repos(tmp_path / "down", down, gateway.tokens["githook"])
    git("tag", "qa-2", cwd=work)
    done = git("push", "-q", "origin", "HEAD:refs/heads/main", "qa-2", cwd=work, env=push_env())
    assert "gateway not reachable" in done.stderr
    _, work = make_repos(tmp_path / "refused", gateway.url, gateway.tokens["revoked"])
    git("tag", "qa-3", cwd=work)
    done = git("push", "-q", "origin", "HEAD:refs/heads/main", "qa-3", cwd=work, env=push_env())
    assert "gateway answered 401" in done.stderr
    assert gateway.tokens["revoked"] not in done.stderr


def test_git_hook_endpoint_checks_role_and_body(gateway: Gateway) -> None:
    body = {"app": "site", "ref": "refs/tags/qa-9", "commit": "a" * 40}
    assert gateway.post("/hooks/git", json=body).status_code == 401
    assert gateway.post("/hooks/git", json=body, token=gateway.tokens["rep"]).status_code == 403
    bad = gateway.post(
        "/hooks/git",
        json={**body, "commit": "$(touch /tmp/x)", "x": 1},
        token=gateway.tokens["dev"],
    )
    assert bad.status_code == 422
    assert {p.split(":")[0] for p in bad.json()["problems"]} == {"commit", "x"}
