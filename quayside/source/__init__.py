"""Where release payloads come from: a bare git mirror per repository."""

from quayside.source.mirror import Commit, GitMirror, mirror_name

__all__ = ["Commit", "GitMirror", "mirror_name"]
