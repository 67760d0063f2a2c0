"""Who edited what a config publish releases: the people an approval policy with
``allow_editor_approval: false`` keeps from approving it (four eyes on every change) — the
authors of the files' versions and of the versions of every variable a template reads."""

from __future__ import annotations

from collections.abc import Sequence

from quayside.config import items
from quayside.config.publish_plan import PublishFile
from quayside.config.store import ConfigStore
from quayside.config.variables import versions_at


def _published_variables(store: ConfigStore, f: PublishFile) -> dict[str, int]:
    """name -> the version of each variable the file's last publish rendered with (empty
    when it was never published; for a marker that recorded none, the versions current when
    it was published)."""
    marker = store.published_marker(f.address)
    if marker is None:
        return {}
    if marker.variables is None:
        return versions_at(store, f.address.env, marker.at)
    return marker.variables


def _variable_authors(store: ConfigStore, f: PublishFile) -> dict[str, set[str]]:
    """user -> the variables (``$name up to vN``) they saved a version of after the one the
    file's last publish used, up to the one this rendering used. A variable the last publish
    did not read counts from its first version."""
    before = _published_variables(store, f) if f.variables else {}
    edited: dict[str, set[str]] = {}
    for name, version in f.variables.items():
        after = before.get(name, 0)
        for record in store.variable_versions(f.address.env, name):
            if after < record.version <= version:
                edited.setdefault(record.author, set()).add(f"${name} up to v{version}")
    return edited


def editors_of(store: ConfigStore, files: Sequence[PublishFile]) -> dict[str, str]:
    """Every author of a version saved after each file's published version, up to the version
    being published, and of a variable version saved after the one the file's last publish
    rendered with, up to the one rendered now, with what they edited.

    Args:
        store: the config store.
        files: the files being published (their item addresses, versions and the variable
            versions their templates read).

    Returns:
        user -> what they edited, e.g. ``{"bob": "hosts up to v3, $upstream up to v2"}``;
        empty when every file and variable is published already (a rollback to an older
        version: its editors were approved when it was first published).
    """
    edited: dict[str, list[str]] = {}
    for f in files:
        for user in sorted(items.authors_since(store, f.address, f.version)):
            edited.setdefault(user, []).append(f"{f.filename} up to v{f.version}")
    for f in files:
        for user, names in sorted(_variable_authors(store, f).items()):
            done = edited.setdefault(user, [])
            done.extend(n for n in sorted(names) if n not in done)
    return {user: ", ".join(what) for user, what in sorted(edited.items())}
