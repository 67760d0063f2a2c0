"""Who edited what a config publish releases: the people an approval policy with
``allow_editor_approval: false`` keeps from approving it (four eyes on every change)."""

from __future__ import annotations

from collections.abc import Sequence

from quayside.config import items
from quayside.config.publish_plan import PublishFile
from quayside.config.store import ConfigStore


def editors_of(store: ConfigStore, files: Sequence[PublishFile]) -> dict[str, str]:
    """Every author of a version saved after each file's published version, up to the version
    being published, with what they edited.

    Args:
        store: the config store.
        files: the files being published (their item addresses and versions).

    Returns:
        user -> what they edited, e.g. ``{"bob": "hosts up to v3, dnsmasq.conf up to v2"}``;
        empty when every file is published already (a rollback to an older version: its
        editors were approved when it was first published).
    """
    edited: dict[str, list[str]] = {}
    for f in files:
        for user in sorted(items.authors_since(store, f.address, f.version)):
            edited.setdefault(user, []).append(f"{f.filename} up to v{f.version}")
    return {user: ", ".join(what) for user, what in sorted(edited.items())}
