"""Test configuration: every module in testbed/ is a pytest plugin (fixtures that start
real components on loopback)."""

import os
from pathlib import Path

# A Prefect client without an API URL must fail loudly, never start (and leak) an ephemeral
# server: every test talks to a platform its fixtures started. Set before prefect is imported.
os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"

pytest_plugins = [
    f"testbed.{p.stem}"
    for p in sorted((Path(__file__).parent.parent / "testbed").glob("*.py"))
    if p.stem != "__init__"
]
