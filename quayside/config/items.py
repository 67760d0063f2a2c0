"""Config items: save drafts, read, compare and restore versions, and the published marker.

Every save is a new version naming the version it started from; history is never rewritten
(a restore is a new version carrying an old one's content). The latest version is the draft;
the published marker moves only through :func:`mark_published`, which the publish flow calls
when a publish succeeded on every targeted host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from quayside.config.address import ItemAddress
from quayside.config.diffing import unified
from quayside.config.errors import FileTooLarge
from quayside.config.limits import MAX_FILE_BYTES, MAX_MESSAGE_CHARS
from quayside.config.records import ItemVersion, PublishedMarker, content_hash
from quayside.config.store import ConfigStore
from quayside.errors import InputError


def check_content(content: object, *, field: str = "content") -> str:
    """``content`` if it is text within :data:`MAX_FILE_BYTES`.

    Raises:
        InputError: not text.
        FileTooLarge: over the limit, naming it.
    """
    if not isinstance(content, str):
        raise InputError(f"{field}: must be text")
    size = len(content.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        raise FileTooLarge(
            f"{field}: {size} bytes is over the config file limit of {MAX_FILE_BYTES} bytes",
            hint="config files are kept in every version; split the file or keep data elsewhere",
        )
    return content


def _check_message(message: str) -> str:
    if len(message) > MAX_MESSAGE_CHARS:
        raise InputError(f"message: longer than {MAX_MESSAGE_CHARS} characters")
    return message


def save(
    store: ConfigStore,
    address: ItemAddress,
    content: str,
    *,
    author: str,
    base_version: int,
    message: str = "",
    template: bool = False,
    at: datetime | None = None,
) -> ItemVersion:
    """Save ``content`` as the item's next version (its new draft).

    Args:
        store: the backend.
        address: the item.
        content: the whole file.
        author: who saves (the authenticated user).
        base_version: the version the edit started from (0 for a new item).
        message: why.
        template: render the file with its environment's variables when publishing.
        at: the time (default now).

    Returns:
        The new version.

    Raises:
        FileTooLarge: content over the limit.
        StaleSave: another version was saved since ``base_version``; nothing was saved.
    """
    check_content(content)
    if base_version < 0:
        raise InputError("base version: must be 0 (a new item) or a version number")
    return store.append_item_version(
        address,
        base_version=base_version,
        content=content,
        content_hash=content_hash(content),
        author=author,
        message=_check_message(message),
        template=template,
        restored_from=None,
        at=at or datetime.now(UTC),
    )


def latest_version_number(store: ConfigStore, address: ItemAddress) -> int:
    """The latest version number of the item, 0 if it has none."""
    versions = store.item_versions(address)
    return versions[-1].version if versions else 0


def get(store: ConfigStore, address: ItemAddress, version: int | None = None) -> ItemVersion:
    """One version of the item (default the latest draft).

    Raises:
        VersionNotFound: no such item or version.
    """
    return store.item_version(address, version)


def history(store: ConfigStore, address: ItemAddress) -> list[ItemVersion]:
    """Every version of the item, oldest first."""
    return store.item_versions(address)


def diff(store: ConfigStore, address: ItemAddress, before: int, after: int) -> str:
    """The unified diff from version ``before`` to version ``after`` (empty when equal).

    Raises:
        VersionNotFound: either version does not exist.
    """
    a = store.item_version(address, before)
    b = store.item_version(address, after)
    return unified(a.content, b.content, f"{address} v{a.version}", f"{address} v{b.version}")


def restore(
    store: ConfigStore,
    address: ItemAddress,
    version: int,
    *,
    author: str,
    base_version: int | None = None,
    message: str = "",
    at: datetime | None = None,
) -> ItemVersion:
    """Save an old version's content as a new draft (history is kept as it was).

    Args:
        base_version: the latest version the caller saw; default the latest now.

    Raises:
        VersionNotFound: no such version.
        StaleSave: ``base_version`` is not the latest any more.
    """
    old = store.item_version(address, version)
    base = latest_version_number(store, address) if base_version is None else base_version
    return store.append_item_version(
        address,
        base_version=base,
        content=old.content,
        content_hash=old.content_hash,
        author=author,
        message=_check_message(message or f"restore version {version}"),
        template=old.template,
        restored_from=version,
        at=at or datetime.now(UTC),
    )


@dataclass(frozen=True)
class ItemState:
    """The latest draft and the published version of an item."""

    latest: ItemVersion
    published: PublishedMarker | None

    @property
    def unpublished(self) -> bool:
        """True when the latest draft is not what was last published."""
        return self.published is None or self.published.version != self.latest.version


def state(store: ConfigStore, address: ItemAddress) -> ItemState:
    """The item's latest draft and published marker.

    Raises:
        VersionNotFound: no such item.
    """
    return ItemState(store.item_version(address), store.published_marker(address))


def published(store: ConfigStore, address: ItemAddress) -> ItemVersion | None:
    """The published version of the item, or None if it was never published."""
    marker = store.published_marker(address)
    return None if marker is None else store.item_version(address, marker.version)


def mark_published(
    store: ConfigStore,
    item: ItemAddress,
    version: int,
    *,
    actor: str,
    at: datetime | None = None,
    variables: Mapping[str, int] | None = None,
) -> None:
    """Move the item's published marker to ``version``: the publish flow calls this, and only
    after the publish succeeded on every targeted host (or the canary set, for a canary).

    Args:
        store: the backend.
        item: the item.
        version: the version now live.
        actor: who published (the run's principal, ``flow-run:<id>``).
        at: when (default now).
        variables: name -> version of the variables the published rendering used (empty for
            a file that is not a template), so the pull endpoint serves what was published.

    Raises:
        VersionNotFound: no such item or version.
    """
    store.set_published(item, version, by=actor, at=at or datetime.now(UTC), variables=variables)


def states(store: ConfigStore, project: str, environment: str | None = None) -> list[ItemState]:
    """The latest draft and published marker of every item of a project (or one of its
    environments), by address."""
    return [state(store, address) for address in store.list_items(project, environment)]


def authors_since(store: ConfigStore, address: ItemAddress, version: int) -> set[str]:
    """Who saved the versions after the published one up to ``version`` (all of them when
    nothing was published): the people a "whoever edited it may not approve its publish"
    policy excludes from approving the publish of ``version``."""
    marker = store.published_marker(address)
    after = marker.version if marker is not None else 0
    return {v.author for v in store.item_versions(address) if after < v.version <= version}
