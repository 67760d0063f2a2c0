"""Alembic migrations of the ledger, run from code by :func:`quayside.ledger.db.migrate`."""
