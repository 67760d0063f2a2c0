"""The layers of DESIGN.md, checked on every module's imports: data flows top to bottom, never
back up. A failure names the module and the import that crosses."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import PROJECT_DIR

PACKAGE = PROJECT_DIR / "quayside"

UPPER = {"runs", "gateway", "cli", "stack", "flows", "tasks", "blocks", "deployments"}
"""Packages that may use Prefect and the layers below them; everything else is the core."""

BLOCKS_NEVER_IMPORT = {"triggers", "gateway", "cli", "flows", "tasks"}
"""What blocks (settings and clients, outbound) must not lean on: inbound triggers and the
layers that use blocks."""


def imports(path: Path) -> Iterator[str]:
    """Every absolute module name ``path`` imports (at any depth: function-level too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def modules() -> list[tuple[str, Path]]:
    """``(first package under quayside, path)`` of every module of the package."""
    return [
        (path.relative_to(PACKAGE).parts[0].removesuffix(".py"), path)
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def crossings() -> list[str]:
    found = []
    for top, path in modules():
        name = path.relative_to(PROJECT_DIR).as_posix()
        for module in imports(path):
            parts = module.split(".")
            inner = parts[1] if parts[0] == "quayside" and len(parts) > 1 else None
            if top not in UPPER and parts[0] == "prefect":
                found.append(f"{name} (core) imports {module}: the core imports no Prefect")
            if top not in UPPER and inner in UPPER:
                found.append(f"{name} (core) imports {module}, a layer above it")
            if top == "commands" and inner == "executors":
                found.append(f"{name}: command builders are pure; {module} is an executor")
            if top == "notify" and inner == "triggers":
                found.append(f"{name}: outbound notify imports inbound {module}")
            if top == "blocks" and inner in BLOCKS_NEVER_IMPORT:
                found.append(f"{name}: blocks configure clients and import no {module}")
            if top == "runs" and inner in {"flows", "tasks"}:
                found.append(f"{name}: runs starts runs by catalogue entry, imports no {module}")
            if top == "tasks" and inner == "flows":
                found.append(f"{name}: tasks import no flow ({module})")
            if top == "flows" and inner == "flows" and not _may_import(path, module):
                found.append(f"{name}: a flow imports no other flow ({module})")
            if parts[0] in {"tests", "bench"}:
                found.append(f"{name} imports {module}: the package imports no tests or bench")
    return found


def _own_body(path: Path) -> str:
    """A flow module may import its own body module (``git_deploy`` -> ``git_deploy_body``)."""
    return f"quayside.flows.{path.stem}_body"


def _may_import(path: Path, module: str) -> bool:
    """A flow imports its own body; a flow's *body* may also import another flow's body, to
    run that release kind's steps inside its own run (image promote -> image release's
    body: one code path), never a flow function."""
    if module == _own_body(path):
        return True
    return path.stem.endswith("_body") and module.endswith("_body")


def test_no_module_crosses_the_layers() -> None:
    assert crossings() == []


@pytest.mark.parametrize(
    ("top", "source", "expected"),
    [
        ("deploy", "import prefect\n", "the core imports no Prefect"),
        ("commands", "from quayside.executors.ssh import SSHExecutor\n", "pure"),
        ("notify", "from quayside.triggers.errors import ParseError\n", "outbound"),
        ("tasks", "from quayside.flows.rollback import roll_back\n", "tasks import no flow"),
        ("ledger", "from quayside.tasks.ledger import ledger_engine\n", "a layer above"),
        ("blocks", "from quayside.triggers.dingtalk import WINDOW_S\n", "blocks configure"),
        ("blocks", "from quayside.tasks.notify import notify\n", "blocks configure"),
        ("runs", "from quayside.flows.rollback import rollback\n", "runs starts runs"),
        ("runs", "import quayside.tasks.ledger\n", "runs starts runs"),
    ],
)
def test_a_crossing_is_named(
    top: str, source: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "quayside"
    (package / top).mkdir(parents=True)
    (package / top / "bad.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.PACKAGE", package)
    monkeypatch.setattr(f"{__name__}.PROJECT_DIR", tmp_path)
    (found,) = crossings()
    assert f"quayside/{top}/bad.py" in found and expected in found
