"""Variable versions a config publish is asked to render with (a rollback puts back the ones
the release it returns to rendered with): checked against the environment's history before
anything renders, so a wrong name or version stops the run with the key named instead of
failing halfway through a template.

They are input, not identity: what a release records (and the approval is bound to) is what
the rendering read, never the parameter as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Engine

from quayside.config.address import EnvAddress, check_variable_name
from quayside.config.backend import open_store
from quayside.config.store import ConfigStore
from quayside.config.variables import versions_at
from quayside.errors import InputError, NotFoundError
from quayside.ledger.models import Release


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


def rendered_with(
    engine: Engine, release: Release, recorded: Sequence[Mapping[str, int]] | None
) -> dict[str, int]:
    """name -> version of the variables ``release``'s templates were rendered with: the
    ``variable_versions`` a rollback to it passes (config publish and image release alike).

    Args:
        recorded: per rendered file, the variable versions its template read, as the release
            recorded them; None for a release made before releases recorded them - then the
            versions current when it finished, from the variables' history (a variable saved
            only later renders at its latest), the rule the pull endpoint uses for such markers.

    Raises:
        InputError: its files recorded different versions of one variable (none to choose).
    """
    if recorded is None:
        when = release.finished_at or release.started_at or release.created_at
        return versions_at(open_store(engine), EnvAddress(release.app_name, release.env_name), when)
    found: dict[str, int] = {}
    for variables in recorded:
        for name, version in variables.items():
            if found.setdefault(name, int(version)) != int(version):
                raise InputError(
                    f"release {release.id} rendered its files with different versions of "
                    f"${name} (v{found[name]} and v{version})",
                    hint="roll back to another release with --to ID, or release with "
                    "variable_versions set by hand",
                )
    return found


def _ranges(versions: list[int]) -> str:
    """``v1-v3, v7`` for versions 1, 2, 3, 7 (Vault keeps only the newest ``max_versions``)."""
    spans: list[tuple[int, int]] = []
    for v in sorted(versions):
        if spans and v == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], v)
        else:
            spans.append((v, v))
    return ", ".join(f"v{a}" if a == b else f"v{a}-v{b}" for a, b in spans)
