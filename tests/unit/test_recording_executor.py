"""The recording executor orchestration-order tests use: it records in order across hosts,
answers from its script, and fails like a real executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from quayside.errors import CommandFailed, ConnectError
from quayside.executors.base import CommandResult, Executor
from testbed.recording_executor import Journal, RecordingExecutor


def test_it_is_an_executor_and_records_every_call_in_order(tmp_path: Path) -> None:
    journal = Journal()
    web1 = RecordingExecutor("web-1", journal, answer=lambda argv: "v1\n")
    web2 = RecordingExecutor("web-2", journal)
    assert isinstance(web1, Executor)
    assert web1.run(["cat", "VERSION"]).stdout == "v1\n"
    web2.run(["true"], stdin=b"payload", env={"A": "1"})
    (tmp_path / "f").write_bytes(b"file")
    web1.put_file(tmp_path / "f", "/srv/f")
    assert [(c.host, c.kind, c.argv) for c in journal.calls] == [
        ("web-1", "run", ("cat", "VERSION")),
        ("web-2", "run", ("true",)),
        ("web-1", "put_file", ("/srv/f",)),
    ]
    assert journal.of("web-2")[0].stdin == b"payload"
    assert journal.programs("web-1") == ["cat"]


def test_a_scripted_failure_raises_as_a_real_executor_does() -> None:
    journal = Journal()

    def answer(argv: tuple[str, ...]) -> str | CommandResult | BaseException:
        if argv[0] == "false":
            return CommandResult("web-1", argv, 3, "", "no such release", 0.0)
        if argv[0] == "ssh-dies":
            return ConnectError("web-1", "connection closed after 7359 bytes")
        return ""

    host = RecordingExecutor("web-1", journal, answer=answer)
    with pytest.raises(CommandFailed, match=r"web-1: .*\(exit 3\): no such release"):
        host.run(["false"])
    assert host.run(["false"], check=False).exit_code == 3
    with pytest.raises(ConnectError, match="7359 bytes"):
        host.run(["ssh-dies"])
    assert journal.programs("web-1") == ["false", "false", "ssh-dies"]
