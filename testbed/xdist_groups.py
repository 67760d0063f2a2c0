"""Keep ``pytest -n 2 --dist loadgroup`` grouping by ``xdist_group`` on pytest 9.2.

pytest-xdist 3.8 tells the controller a test's group by appending ``@group`` to the test's node
id on the worker (it writes ``item._nodeid``). pytest 9.2 keeps node ids in a structured
``item._id`` and ignores ``_nodeid``, so every group was silently dealt out test by test to both
workers: each worker started its own copy of every group's session fixtures (the platform, the
process stack, the compose stack) and the groups' tests ran side by side
(pytest-dev/pytest-xdist#1386, fix proposed in #1388). After xdist's hook has run, this copies
the id it wrote into the one pytest reports; where xdist's id already took effect (older
pytest, or a fixed xdist) it changes nothing.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Generator[None, None, None]:
    yield
    for item in items:
        grouped = item.__dict__.get("_nodeid")  # written by xdist: "<node id>@<group>"
        if grouped and grouped != item.nodeid and grouped.startswith(item.nodeid + "@"):
            from _pytest.nodeid import NodeId  # only on a pytest with structured node ids

            item._id = NodeId.parse(grouped)  # type: ignore[attr-defined]
