"""Benchmarks share fixtures with the tests only through the test-bed package (testbed/):
no bench module imports from ``tests`` (issue 14 item 5), so the benchmarks run from a
checkout without the test suite on the path."""

from __future__ import annotations

import ast
from pathlib import Path

from bench.harness import BENCH_DIR


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports as ``.name``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_no_bench_module_imports_the_tests() -> None:
    files = sorted(
        p for p in BENCH_DIR.rglob("*.py") if ".work" not in p.relative_to(BENCH_DIR).parts
    )
    assert BENCH_DIR / "git_deploy" / "session.py" in files  # the package is searched too
    crossing = {
        str(path.relative_to(BENCH_DIR)): sorted(
            m for m in imported_modules(path) if m == "tests" or m.startswith("tests.")
        )
        for path in files
    }
    assert {k: v for k, v in crossing.items() if v} == {}


def test_the_check_sees_an_import_from_the_tests(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom tests.harness import x\ndef f():\n    import tests.sshd\n")
    assert {"os", "tests.harness", "tests.sshd"} <= imported_modules(sample)
