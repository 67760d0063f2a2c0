"""What each host of an app/environment looked like after its last deploy (the facts its
stage printed at the end), kept per app/environment in the data directory. The next deploy
stages a host that still looks like this in one guarded round trip (see
``quayside.deploy.scripts.stage``); a host that changed meanwhile is caught by the guard, so
a lost or stale file only costs the facts round trip."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path


def load(path: Path) -> dict[str, str]:
    """host -> facts text, or nothing when the file is absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {h: f for h, f in data.items() if isinstance(h, str) and isinstance(f, str)}


def save(
    path: Path,
    before: Mapping[str, str],
    after: Mapping[str, str],
    forget: Iterable[str] = (),
) -> None:
    """Write ``before`` updated with ``after`` and without the hosts in ``forget`` (whose
    state is unknown, e.g. they failed), atomically. Best effort."""
    facts = {h: f for h, f in before.items() if h not in set(forget)}
    facts.update(after)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(facts, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
