"""nginx's checker and reload as argv templates (placeholders are filled per host by
:mod:`quayside.config.service_commands`). nginx re-reads its whole configuration on reload, so
it never needs a restart for a config change."""

from __future__ import annotations


def check(main: str = "{main}") -> list[str]:
    """Test a staged configuration (``-q``: only errors on stderr)."""
    return ["nginx", "-t", "-q", "-c", main]


def reload() -> list[str]:
    return ["nginx", "-s", "reload"]
