"""Rolling a config release back: publish again what the config release before it published -
its file versions rendered with the variable versions it rendered with, so the hosts serve
that release's content again, not its files with today's variables - as a new config release
(history is never rewritten; the rollback is a publish of older versions, diffed, approved,
validated, verified and restorable like any other).

``quayside rollback APP ENV`` dispatches here when the current release's kind is ``config``:
it starts the ``config-publish`` deployment with :func:`rollback_parameters`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from quayside.config.publish_variables import rendered_with
from quayside.errors import InputError, NotFoundError
from quayside.ledger.models import Release, ReleaseKind, ReleaseStatus
from quayside.ledger.release_queries import get_release, list_releases


def _files(release: Release) -> dict[str, int]:
    files = (release.details or {}).get("files") or {}
    return {name: int(v["version"]) for name, v in files.items() if isinstance(v, dict)}


def _served(release: Release) -> dict[str, tuple[int, str | None]]:
    """file -> (version, rendered content hash): what the release put on the hosts (a
    variable changed between two publishes of the same file versions changes the hash)."""
    files = (release.details or {}).get("files") or {}
    return {
        name: (int(v["version"]), v.get("content_hash"))
        for name, v in files.items()
        if isinstance(v, dict)
    }


def _variables(engine: Engine, release: Release) -> dict[str, int]:
    """name -> version of the variables ``release``'s templates were rendered with
    (:func:`~quayside.config.publish_variables.rendered_with`: for a release that recorded
    none, those current when it finished).

    Raises:
        InputError: its files recorded different versions of one variable (none to choose).
    """
    files = [
        v for v in ((release.details or {}).get("files") or {}).values() if isinstance(v, dict)
    ]
    if any(not isinstance(f.get("variables"), dict) for f in files):
        return rendered_with(engine, release, None)
    return rendered_with(engine, release, [f["variables"] for f in files])


def _service(release: Release) -> str | None:
    value = (release.details or {}).get("service")
    return value if isinstance(value, str) else None


def config_releases(engine: Engine, app: str, env: str, limit: int = 500) -> list[Release]:
    """The succeeded config releases of ``app``/``env``, newest first."""
    return [
        r
        for r in list_releases(engine, app, env, limit=limit, status=ReleaseStatus.succeeded)
        if r.kind is ReleaseKind.config and _files(r)
    ]


def rollback_parameters(
    engine: Engine,
    app: str,
    env: str,
    *,
    service: str | None = None,
    to: int | None = None,
    requested_by: str = "ui",
) -> dict[str, Any]:
    """The ``config-publish`` parameters that roll ``app``/``env``'s current config release
    back: the file versions the previous successful config release of the same service
    published (one that published other content: other versions, or the same ones rendered
    with other variables), or release ``to``'s, with the variable versions that release
    rendered them with (``variable_versions``).

    Args:
        service: the service (default the newest config release's).
        to: a ledger release id of a config release of this app/env to go back to.

    Raises:
        NotFoundError: no config release, or none earlier with other versions.
        InputError: ``to`` is no succeeded config release of this app/env and service, or
            the release recorded two versions of one variable.
    """
    releases = config_releases(engine, app, env)
    if service is not None:
        releases = [r for r in releases if _service(r) == service]
    if not releases:
        raise NotFoundError(
            f"{app}/{env} has no successful config release"
            + (f" of service {service}" if service else ""),
            hint=f"see `quayside releases {app} {env}`",
        )
    current = releases[0]
    name = _service(current)
    if to is not None:
        dest = get_release(engine, to)
        if (
            dest.app_name != app
            or dest.env_name != env
            or dest.kind is not ReleaseKind.config
            or dest.status is not ReleaseStatus.succeeded
            or _service(dest) != name
            or not _files(dest)
        ):
            raise InputError(
                f"release {to} is not a succeeded config release of {app}/{env} {name}",
                hint=f"pick one from `quayside releases {app} {env}`",
            )
    else:
        older = [r for r in releases[1:] if _service(r) == name and _served(r) != _served(current)]
        if not older:
            raise NotFoundError(
                f"{app}/{env} has no earlier config release of {name} with other content",
                hint="restore an old version as a draft (`quayside config restore`) and publish",
            )
        dest = older[0]
    return {
        "app": app,
        "env": env,
        "service": name,
        "versions": _files(dest),
        "variable_versions": _variables(engine, dest),
        "rollback_of": current.id,
        "requested_by": requested_by,
    }
