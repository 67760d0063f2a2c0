"""The demo's quayside.yaml: one app on four hosts of this machine (``transport: local``),
a test environment and an approval-gated prod environment. Written once, never overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from quayside.errors import QuaysideError

DEMO_APP = "demo"
DEMO_SPACE = "demo"
TEST_HOSTS = ("test-1", "test-2")
PROD_HOSTS = ("prod-1", "prod-2")


def repo_path(home: Path) -> Path:
    """The demo's bare git repository."""
    return home / "demo" / "site.git"


def hosts_dir(home: Path) -> Path:
    """Where the demo hosts keep their deploy roots: ``<hosts_dir>/<host>/site``."""
    return home / "demo" / "hosts"


def deploy_root(home: Path, host: str) -> Path:
    """The deploy root of demo host ``host`` (``current`` and ``releases/`` are in it)."""
    return hosts_dir(home) / host / "site"


def _quoted(path: Path | str) -> str:
    return json.dumps(str(path))  # a JSON string is a YAML double-quoted scalar


def demo_inventory(home: Path) -> str:
    """The demo inventory's text for data directory ``home`` (absolute paths into it)."""
    test, prod = ", ".join(TEST_HOSTS), ", ".join(PROD_HOSTS)
    host_lines = "".join(f"  {h}: {{transport: local}}\n" for h in (*TEST_HOSTS, *PROD_HOSTS))
    repo, hosts = _quoted(repo_path(home)), hosts_dir(home)
    root = _quoted(hosts / "{host}" / "site")
    return f"""\
# The Quayside demo: written by `quayside up` on its first start (or `quayside demo`)
# because there was no inventory here. Quayside never overwrites it: edit it, or replace it
# with your own hosts and apps (README.md); `quayside check` validates it.
#
# Each demo host is a directory on this machine (transport: local: the same commands as over
# SSH, run here as the platform's user): a release of app demo lands in
# {hosts}/<host>/site/releases/, and .../site/current points at the one serving.
version: 1
timezone: UTC

hosts:
{host_lines}
groups:
  demo-test: [{test}]
  demo-prod: [{prod}]
  demo: [{test}, {prod}]  # hello-release's default group

apps:
  {DEMO_APP}:
    space: {DEMO_SPACE}  # roles are granted per space: demo-master is MASTER here
    repo: {repo}  # tags v1, v2, qa-1, release-1
    deploy_root: {root}
    health_check: {{command: [grep, -q, Quayside demo, index.html], retries: 3, interval_s: 0.5}}
    tag_rules:  # git hooks: qa-* tags deploy to test, release-* tags to prod
      - {{pattern: '^qa-', environment: test}}
      - {{pattern: '^release-', environment: prod}}
    environments:
      test:
        groups: [demo-test]
      prod:
        groups: [demo-prod]
        # one MASTER, not the requester; a deploy started from the Prefect UI names nobody
        # (its requested_by is typed): the demo lets one MASTER approve it - a team sets
        # two_approvers (the default) or refuse
        approval: {{required: 1, role: MASTER, unattributed: one_approver}}
"""


def write_new_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` only if nothing is there: written to a temporary name,
    then hard-linked into place (which fails instead of replacing), so no reader ever sees
    half a file and an existing inventory is never overwritten.

    Raises:
        QuaysideError: ``path`` exists already, or its directory cannot be written.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.link(tmp, path)
    except FileExistsError:
        raise QuaysideError(
            f"{path} exists: the demo never overwrites an inventory",
            hint="move it away, or point QUAYSIDE_INVENTORY at another path, and run "
            "`quayside demo` again",
        ) from None
    except OSError as e:
        raise QuaysideError(
            f"cannot write the demo inventory {path}: {e.strerror or e}",
            hint="point QUAYSIDE_INVENTORY at a file in a directory you can write",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
