"""The HTTP gateway: task API, hooks, chat callbacks and approvals, all turned into Prefect
runs through ``quayside.runs``."""
