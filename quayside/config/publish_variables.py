"""Variable versions a config publish is asked to render with (a rollback puts back the ones
the release it returns to rendered with): checked against the environment's history before
anything renders, so a wrong name or version stops the run with the key named instead of
failing halfway through a template.

They are input, not identity: what a release records (and the approval is bound to) is what
the rendering read, never the parameter as given.
"""

from __future__ import annotations

from collections.abc import Mapping

from quayside.config.address import EnvAddress, check_variable_name
from quayside.config.store import ConfigStore
from quayside.errors import InputError, NotFoundError


def check_variable_versions(
    store: ConfigStore, env: EnvAddress, given: object
) -> dict[str, int] | None:
    """``given`` (variable name -> version) when every name is a variable of ``env`` and every
    version one it has; None when nothing was given.

    Raises:
        InputError: not a mapping, a bad name, or a version that is not a number of 1 or more.
        NotFoundError: ``env`` has no such variable, or the variable no such version (its
            versions named).
    """
    if given is None:
        return None
    if not isinstance(given, Mapping):
        raise InputError("variable_versions: must map variable names to version numbers")
    checked: dict[str, int] = {}
    for name, number in given.items():
        check_variable_name(name, "variable_versions")
        where = f"variable_versions.{name}"
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise InputError(f"{where}: must be a version number (1 or more)")
        history = [r.version for r in store.variable_versions(env, name)]
        if not history:
            raise NotFoundError(
                f"{where}: {env} has no variable ${name}",
                hint=f"see its variables with `quayside vars list {env}`",
            )
        if number not in history:
            raise NotFoundError(
                f"{where}: ${name} of {env} has no version {number} (it has {_ranges(history)})",
                hint=f"see `quayside vars get {env} {name} --version N`",
            )
        checked[name] = number
    return checked


def _ranges(versions: list[int]) -> str:
    """``v1-v3, v7`` for versions 1, 2, 3, 7 (Vault keeps only the newest ``max_versions``)."""
    spans: list[tuple[int, int]] = []
    for v in sorted(versions):
        if spans and v == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], v)
        else:
            spans.append((v, v))
    return ", ".join(f"v{a}" if a == b else f"v{a}-v{b}" for a, b in spans)
