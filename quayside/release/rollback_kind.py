"""What ``rollback APP ENV`` starts, for every trigger (the CLI, chat): every release kind
records what it released in the same ledger, so the kind of what serves decides which flow
rolls it back.

- ``git`` (a code deploy, or an earlier rollback of one): the ``rollback`` deployment, back to
  an earlier release directory.
- ``config``: ``config-publish`` with the versions an earlier config release published.
- ``image``: ``image-release`` with the earlier digest and the config it ran with.

Any other kind (a hello release, a plugin provisioning, an image build or promotion) has no
rollback: it is refused with what to do instead, never rolled back as if it were code.

:func:`rollback_kind` is the rule (pure); :func:`rollback_run` reads the ledger for it and
builds the parameters of the run to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from quayside.errors import InputError
from quayside.ledger.models import ReleaseKind

if TYPE_CHECKING:
    from sqlalchemy import Engine

RollbackKind = Literal["git", "config", "image"]
KINDS: tuple[RollbackKind, ...] = ("git", "config", "image")

#: the catalogue deployment that rolls each kind back
DEPLOYMENTS: dict[RollbackKind, str] = {
    "git": "rollback",
    "config": "config-publish",
    "image": "image-release",
}

_OF_RELEASE: dict[ReleaseKind, RollbackKind] = {
    ReleaseKind.deploy: "git",
    ReleaseKind.rollback: "git",
    ReleaseKind.config: "config",
    ReleaseKind.image: "image",
}

_NO_ROLLBACK: dict[ReleaseKind, str] = {
    ReleaseKind.hello: "a hello release changes nothing an app serves",
    ReleaseKind.plugin: "plugin provisioning has no rollback; provision the plugin again",
    ReleaseKind.image_build: "an image build serves nothing (roll back the image release)",
    ReleaseKind.image_promote: "a promotion serves nothing itself; roll back the image "
    "release it started",
}

#: the kinds whose newest release says what APP/ENV serves (a build and a promotion serve
#: nothing themselves: the promotion's image release does)
SERVING: tuple[ReleaseKind, ...] = tuple(
    k for k in ReleaseKind if k not in (ReleaseKind.image_build, ReleaseKind.image_promote)
)


@dataclass(frozen=True)
class RollbackRun:
    """The run a rollback starts: the catalogue ``deployment`` and its ``parameters``."""

    kind: RollbackKind
    deployment: str
    parameters: dict[str, Any]


def rollback_kind(
    asked: str | None, named: ReleaseKind | str | None, newest: ReleaseKind | str | None
) -> RollbackKind:
    """Which kind a rollback rolls back.

    Args:
        asked: the kind the user named (``--kind``), which wins.
        named: the kind of the release the user named by id (``--to ID``), else None.
        newest: the kind of APP/ENV's newest serving release, else None (nothing released
            yet: the code rollback then says there is nothing to go back to).

    Returns:
        ``git``, ``config`` or ``image``.

    Raises:
        InputError: ``asked`` is none of them, or the release that decides is of a kind that
            has no rollback (hello, plugin, ...), naming it.
    """
    if asked is not None:
        if asked not in KINDS:
            raise InputError(
                f"--kind: {asked!r} is neither git, config nor image",
                hint="git rolls back the code, config the config files, image the container",
            )
        return asked  # type: ignore[return-value]  # one of KINDS, checked above
    deciding = named if named is not None else newest
    if deciding is None:
        return "git"
    kind = ReleaseKind(deciding)
    if kind in _OF_RELEASE:
        return _OF_RELEASE[kind]
    which = "the release named" if named is not None else "the newest release"
    raise InputError(
        f"{which} is a {kind.value} release, which cannot be rolled back: {_NO_ROLLBACK[kind]}",
        hint="name a code, config or image release with --to ID (see `quayside releases "
        "APP ENV`), or the kind with --kind git|config|image",
    )


def rollback_run(
    engine: Engine,
    app: str,
    env: str,
    *,
    to: str | None,
    kind: str | None,
    requested_by: str,
) -> RollbackRun:
    """The run that rolls ``app``/``env`` back: the kind by :func:`rollback_kind` from the
    ledger, and that kind's parameters (``to``: a release id or version, default the previous
    one of that kind).

    Raises:
        InputError: a kind with no rollback, or ``to`` that does not fit the kind.
        NotFoundError: the release ``to`` names, or nothing earlier to go back to.
    """
    from quayside.ledger.release_queries import current_release, get_release

    named = get_release(engine, int(to)).kind if to is not None and to.strip().isdigit() else None
    newest = None
    if kind is None and named is None:
        row = current_release(engine, app, env, kinds=list(SERVING))
        newest = row.kind if row is not None else None
    chosen = rollback_kind(kind, named, newest)
    if chosen == "image":
        from quayside.images.image_release_target import rollback_parameters as image_parameters

        parameters = image_parameters(engine, app, env, to=to, requested_by=requested_by)
    elif chosen == "config":
        from quayside.config.publish_rollback import rollback_parameters as config_parameters

        if to is not None and not to.strip().isdigit():
            raise InputError(
                f"--to {to!r}: a config rollback goes to a release id",
                hint=f"see the ids in `quayside releases {app} {env}`",
            )
        parameters = config_parameters(
            engine, app, env, to=int(to) if to is not None else None, requested_by=requested_by
        )
    else:
        parameters = {"app": app, "env": env, "requested_by": requested_by}
        if to is not None:
            parameters["to"] = to
    return RollbackRun(chosen, DEPLOYMENTS[chosen], parameters)
