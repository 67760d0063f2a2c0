-- The official postgres image runs this once, on an empty data directory: Prefect's database
-- is POSTGRES_DB (prefect); the Quayside ledger gets its own on the same server.
CREATE DATABASE quayside;
