"""The release lifecycle every release kind shares, as core code without Prefect: what a host's
outcome is recorded as, how a run's outcome is told, and how an interrupted release is
reconciled with what the hosts serve. ``quayside.tasks.release_lifecycle`` runs it in a flow."""
