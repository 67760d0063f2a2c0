"""Test configuration: every module in tests/harness/ is a pytest plugin (fixtures that start
real components on loopback)."""

from pathlib import Path

pytest_plugins = [
    f"tests.harness.{p.stem}"
    for p in sorted((Path(__file__).parent / "harness").glob("*.py"))
    if p.stem != "__init__"
]
