"""Processes that end with ``quayside up``: the parent-death request lives in the executors
layer (:mod:`quayside.executors.parent_death`), beside the one local process runner that
uses it for every other process Quayside starts; the stack imports it from there."""

from __future__ import annotations

from quayside.executors.parent_death import PR_SET_PDEATHSIG, die_with_parent, preexec

__all__ = ["PR_SET_PDEATHSIG", "die_with_parent", "preexec"]
