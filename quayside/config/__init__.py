"""The config center: versioned config files and variables per project/environment, sandboxed
templates, and storage backends behind one interface. No Prefect import.

Modules:
    address       item and variable addresses, refused with the field named when malformed
    records       the version records every backend returns
    errors        what a user can act on: a stale save, a file too large, a template error
    stale         the stale-save error both backends raise (both versions, secrets masked)
    limits        size limits (a config file, a variable, a message)
    store         the storage interface (a Protocol) every backend implements
    sql_store     the ledger database backend (SQLite, PostgreSQL)
    vault_store   HashiCorp Vault KV v2 backend (hvac)
    items         save, read, diff, restore config files; the published marker
    variables     set, read and list variables; secrets encrypted, masked when shown
    secret_box    the encryption key in QUAYSIDE_HOME and Fernet around it
    masking       how a secret is shown: ``••••`` and the version that changed
    templates     Jinja2 rendering in a sandbox with StrictUndefined
    vault_refs    variables that point at a Vault path (``mount/path#key``)
    render        an item's content as it would be published (templates rendered)
    diffing       unified diffs between versions
    permissions   who may read and edit a project's config (the existing roles)
    backend       which store the settings choose
"""
