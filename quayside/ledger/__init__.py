"""The release ledger: what is deployed where, who approved what, who holds the deploy lock,
and an append-only audit log. SQLAlchemy 2 models, Alembic migrations shipped in
``quayside/ledger/migrations`` and small repository modules that take an Engine or a Session.

Modules:
    models        declarative models and status enums (a package: one module per domain)
    db            engines, migrations, transactions, schema-version check
    releases      recording a release: start, running, host outcomes, finish
    release_queries        reading releases: current, previous, listings, one, of a run
    release_interruptions  ending a release its run left unfinished (interrupted)
    approvals     approval requests and decisions
    locks         per app+environment deploy lock (lease; taken over from a dead holder)
    busy          busy writes tried again for a bounded time, then named
    environments  apps, environments, pausing automatic triggers
    audit         the one way to write an audit event
"""
