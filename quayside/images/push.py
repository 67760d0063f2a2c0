"""Push a built image with the engine, then ask the registry (not the engine's output) which
manifest digest the pushed tag resolves to: that digest is the image's identity from here to
production."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quayside.images.errors import PushFailed
from quayside.registry import RegistryClient, RegistryError, RegistrySettings
from quayside.registry.names import ImageName


def auth_config(settings: RegistrySettings) -> dict[str, str] | None:
    """The engine's ``X-Registry-Auth`` for ``settings`` (None: anonymous)."""
    if settings.username is None or settings.password is None:
        return None
    return {
        "username": settings.username,
        "password": settings.password.get_secret_value(),
        "serveraddress": settings.host,
    }


def push_image(
    api: Any, image: ImageName, settings: RegistrySettings, on_line: Callable[[str], None]
) -> None:
    """Push ``image`` (registry/repository:tag, built and tagged on the engine ``api``).

    Raises:
        PushFailed: the engine reported an error (names the registry, the user and the image).
    """
    from docker.errors import DockerException

    user = settings.username or "(anonymous)"
    repository = f"{image.registry}/{image.repository}"
    try:
        for item in api.push(
            repository, tag=image.tag, auth_config=auth_config(settings), stream=True, decode=True
        ):
            if item.get("error") or item.get("errorDetail"):
                detail = item.get("errorDetail") or {}
                message = str(item.get("error") or detail.get("message") or "push failed")
                raise PushFailed(settings.host, user, str(image), message.strip())
            status = item.get("status")
            if status and not item.get("progressDetail"):
                on_line(f"{item['id']}: {status}" if item.get("id") else str(status))
    except DockerException as e:
        raise PushFailed(settings.host, user, str(image), str(e)) from e


def pushed_digest(client: RegistryClient, image: ImageName) -> str:
    """The manifest digest ``image``'s tag resolves to in its registry.

    Raises:
        RegistryError: the registry does not have it (or refused to say).
    """
    assert image.tag is not None
    digest = client.manifest_digest(image.repository, image.tag)
    if digest is None:
        raise RegistryError(
            client.name,
            f"{image.repository}:{image.tag} is not there after the push",
            hint="check the registry's storage and logs, then build again",
        )
    return digest
