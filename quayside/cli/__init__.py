"""The ``quayside`` command line (typer + rich)."""
