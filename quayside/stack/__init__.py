"""The local platform started by ``quayside up``: Prefect server + UI, a worker, the gateway."""
