"""Changed files sent by rsync, for changes too large for a stage's tar and no scratch
directory to write one (and for restoring a pruned release from the artifact store)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from quayside.commands.rsync import files_from_bytes, parse_rsync_stats, remote_dest, rsync_push
from quayside.errors import CommandFailed, CommandTimeout
from quayside.executors import local_processes
from quayside.executors.base import Executor


def rsync_files(
    executor: Executor,
    payload_dir: Path,
    dest_dir: str,
    files: Sequence[str],
    *,
    link_dest: str | None = None,
    timeout_s: int = 600,
) -> tuple[int, int]:
    """rsync ``files`` (relative paths) from ``payload_dir`` into ``dest_dir`` on the host,
    over the executor's remote shell (a local copy for this machine). Returns (files sent,
    bytes sent). rsync runs through the local process runner: it dies with this process.

    Raises:
        CommandFailed: rsync exited non-zero (message has the stderr tail).
        CommandTimeout: rsync ran past ``timeout_s`` (+30 s).
    """
    shell = executor.remote_shell()
    if shell is None:
        ssh: list[str] | None = None
        dest = dest_dir
    else:
        ssh, dest = list(shell.argv), remote_dest(shell.user, shell.address, dest_dir)
    with tempfile.NamedTemporaryFile(prefix="quayside-files-") as listing:
        listing.write(files_from_bytes(files))
        listing.flush()
        argv = rsync_push(
            payload_dir,
            dest,
            ssh,
            link_dest=link_dest,
            files_from=Path(listing.name),
            timeout=timeout_s,
        )
        if link_dest is not None:
            # rsync's quick check (size + mtime) would hard-link a same-size file of another
            # commit with the same commit time: compare content instead
            argv.insert(1, "--checksum")
        try:
            proc = local_processes.run(argv, timeout=timeout_s + 30)
        except subprocess.TimeoutExpired as e:
            raise CommandTimeout(executor.name, "rsync timed out", command=argv) from e
    if proc.returncode != 0:
        raise CommandFailed(
            executor.name,
            f"rsync to {dest_dir} failed",
            command=argv,
            exit_code=proc.returncode,
            stderr=proc.stderr,
        )
    stats = parse_rsync_stats(proc.stdout)
    return stats.files_sent, stats.bytes_sent
