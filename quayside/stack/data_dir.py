"""The data directory is private: ``quayside up`` creates it 0700, runs everything it starts
with umask 077 (databases, logs, sockets 0600/0700), and refuses one other users can reach.

It holds Prefect's database (with the key that encrypts its Secret blocks), the ledger (users,
token hashes, the audit log) and the Prefect API's auth string.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from quayside.stack.supervisor import StackError

#: the umask of ``quayside up`` and every process it starts
PRIVATE_UMASK = 0o077


def prepare_data_dir(home: Path) -> None:
    """Create ``home`` (0700) or check that only its owner can use it.

    Call with :data:`PRIVATE_UMASK` in force: missing parents are created private too.

    Raises:
        StackError: ``home`` is not a directory, belongs to another user, or grants group
            or others any access.
    """
    if not home.exists():
        home.mkdir(mode=0o700, parents=True)
    info = home.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise StackError(
            f"data directory {home} is not a directory",
            hint="set QUAYSIDE_HOME to a directory (it is created if missing)",
        )
    if info.st_uid != os.geteuid():
        raise StackError(
            f"data directory {home} belongs to uid {info.st_uid}, not to this user "
            f"(uid {os.geteuid()})",
            hint="run `quayside up` as the directory's owner, or set QUAYSIDE_HOME elsewhere",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise StackError(
            f"data directory {home} has mode {mode:04o}, open to other users; "
            f"make it private: chmod 700 {shlex.quote(str(home))}",
            hint="it holds Prefect's database (with its Secret-block key), the ledger and "
            "the API auth string",
        )
