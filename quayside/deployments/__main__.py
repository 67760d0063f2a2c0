"""``python -m quayside.deployments register|render``: register the catalogue with the Prefect API
named by PREFECT_API_URL, or print prefect.yaml."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from quayside.project_root import PROJECT_DIR


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "register"
    if command == "render":
        from quayside.deployments.render import render

        sys.stdout.write(render())
        return 0
    if command == "register":
        from quayside.deployments.register import ensure_work_pool, register_all, register_blocks

        project = Path(os.environ.get("QUAYSIDE_PROJECT_DIR", PROJECT_DIR))

        async def register() -> tuple[list[str], dict[str, str]]:
            await ensure_work_pool()
            return await register_blocks(), await register_all(project.resolve())

        slugs, deployments = asyncio.run(register())
        for slug in slugs:
            print(f"block type {slug}")
        for name, dep_id in deployments.items():
            print(f"deployment {name} {dep_id}")
        return 0
    print(f"unknown command '{command}': use register or render", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
