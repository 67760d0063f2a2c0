"""How a secret is shown anywhere a person or a log could see it: ``••••`` and the version that
changed, never the value (not in a log, a diff, an error, an artifact or a ``repr``)."""

from __future__ import annotations

from quayside.config.records import VariableVersion

MASK = "••••"


class SecretText(str):
    """A plaintext secret value that shows as ``••••`` in ``repr`` and formatting.

    ``repr``, ``str``, f-strings and ``%s`` (so log records) show the mask; :meth:`reveal`
    gives the value, for the renderer or a deliberate ``--reveal``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return MASK

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def reveal(self) -> str:
        """The value as a plain ``str`` (for a renderer or a deliberate ``--reveal``)."""
        return self[:]  # slicing a str subclass gives a plain str


def shown(record: VariableVersion, value: str | None = None) -> str:
    """What a listing, a diff or an error shows for ``record``: the value (or the Vault
    reference) when it is not secret, else ``•••• (v3)``."""
    if record.secret:
        return f"{MASK} (v{record.version})"
    if record.kind == "vault-ref":
        return f"vault:{record.stored}"
    return value if value is not None else record.stored
