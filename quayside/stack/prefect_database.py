"""``python -m quayside.stack.prefect_database``: prepare Prefect's database once, before
several API server processes start on it.

Each Prefect API server process, when it starts, migrates the database and registers Prefect's
block types (``prefect.server.api.server``: ``run_migrations`` and ``add_block_types``). With
``prefect server start --workers N`` those N processes do it at the same moment on an empty
database and collide (measured here: "relation ix_flow__created already exists", then
"duplicate key value violates unique constraint uq_block_type__slug"; uvicorn then stops every
worker). The compose stack runs this module first (service ``prefect-migrate``) and starts the
server with ``PREFECT_API_DATABASE_MIGRATE_ON_START=false`` and
``PREFECT_API_BLOCKS_REGISTER_ON_START=false``; it does the same two steps with Prefect's own
functions, once.
"""

from __future__ import annotations

import asyncio


async def prepare() -> None:
    """Migrate Prefect's database to this Prefect's schema and register its block types."""
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    db = provide_database_interface()
    await db.create_db()
    session = await db.session()  # as Prefect's server does: the registration begins its own
    async with session:
        await run_block_auto_registration(session=session)


def main() -> None:
    asyncio.run(prepare())
    print("prefect database ready", flush=True)


if __name__ == "__main__":
    main()
