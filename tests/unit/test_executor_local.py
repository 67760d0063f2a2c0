"""LocalExecutor against real processes on this machine."""

from __future__ import annotations

import stat
import sys
import threading
from pathlib import Path

import pytest

from quayside.errors import CommandFailed, CommandTimeout
from quayside.executors import CommandResult, Executor, LocalExecutor

# Every character a shell would act on, in one argument.
PAYLOAD = "a b  $(touch /tmp/quayside-pwned) ; `id` | & > < * ? 'single' \"double\" \\ \n\tend"


def alive(pid: int) -> bool:
    """Whether ``pid`` is running (a zombie waiting for an absent reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


@pytest.fixture
def local() -> LocalExecutor:
    return LocalExecutor()


def test_implements_the_executor_protocol(local: LocalExecutor) -> None:
    assert isinstance(local, Executor)
    assert local.name == "local"


def test_this_machine_needs_no_remote_shell_and_has_an_address() -> None:
    local = LocalExecutor("web-local", address="127.0.0.5")
    assert local.remote_shell() is None  # rsync copies locally
    assert local.address == "127.0.0.5"


def test_runs_a_command_and_returns_output_and_exit_code(local: LocalExecutor) -> None:
    result = local.run(["echo", "hello"])
    assert isinstance(result, CommandResult)
    assert result.host == "local"
    assert result.argv == ("echo", "hello")
    assert result.exit_code == 0 and result.ok
    assert result.stdout == "hello\n"
    assert result.stderr == ""
    assert result.duration_s >= 0


def test_argument_with_shell_metacharacters_arrives_verbatim(local: LocalExecutor) -> None:
    result = local.run(["printf", "%s", PAYLOAD])
    assert result.stdout == PAYLOAD
    assert not Path("/tmp/quayside-pwned").exists()


def test_env_is_added_and_cwd_is_used(local: LocalExecutor, tmp_path: Path) -> None:
    script = "import os; print(os.environ['QS_VALUE']); print(os.getcwd())"
    result = local.run(
        [sys.executable, "-c", script], env={"QS_VALUE": "x y $z"}, cwd=str(tmp_path)
    )
    assert result.stdout.splitlines() == ["x y $z", str(tmp_path)]
    # The rest of the environment is kept (PATH found the interpreter's imports, etc.).
    assert local.run(["sh", "-c", "echo $PATH"], env={"A": "1"}).stdout.strip()


def test_stdin_is_fed_to_the_command(local: LocalExecutor) -> None:
    data = b"line one\nline two\n" * 10_000
    assert local.run(["cat"], stdin=data).stdout.encode() == data


def test_output_is_streamed_line_by_line_as_it_arrives(
    local: LocalExecutor, tmp_path: Path
) -> None:
    # The command waits for a file that only the callback creates, after seeing "ready":
    # if output were delivered at the end, this would hang until the timeout.
    gate = tmp_path / "gate"
    script = (
        'echo ready; echo "to stderr" >&2; '
        f"while [ ! -e {gate} ]; do sleep 0.02; done; echo second; printf 'no newline'"
    )
    seen: list[tuple[str, str]] = []

    def on_output(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "ready":
            gate.touch()

    result = local.run(["sh", "-c", script], on_output=on_output, timeout=20)
    assert [line for stream, line in seen if stream == "stdout"] == [
        "ready",
        "second",
        "no newline",
    ]
    assert ("stderr", "to stderr") in seen
    assert result.stdout == "ready\nsecond\nno newline"


def test_many_lines_arrive_in_order(local: LocalExecutor) -> None:
    lines: list[str] = []
    local.run(["seq", "1", "5000"], on_output=lambda stream, line: lines.append(line))
    assert lines == [str(i) for i in range(1, 5001)]


def test_timeout_kills_the_whole_process_group(local: LocalExecutor, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # The shell starts a background child; the timeout must kill it too.
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    with pytest.raises(CommandTimeout) as info:
        local.run(["sh", "-c", script], timeout=0.5)
    assert info.value.host == "local"
    assert "timed out after 0.5s" in str(info.value)
    assert not alive(int(pid_file.read_text()))


def test_nonzero_exit_raises_command_failed_with_stderr_tail(local: LocalExecutor) -> None:
    with pytest.raises(CommandFailed) as info:
        local.run(["sh", "-c", "echo first >&2; echo 'it broke' >&2; exit 3"])
    error = info.value
    assert error.exit_code == 3
    assert error.command == ["sh", "-c", "echo first >&2; echo 'it broke' >&2; exit 3"]
    assert "it broke" in error.stderr_tail
    assert str(error).startswith("local: command failed: sh -c ")
    assert "(exit 3)" in str(error) and "it broke" in str(error)


def test_check_false_returns_the_failed_result(local: LocalExecutor) -> None:
    result = local.run(["sh", "-c", "exit 4"], check=False)
    assert result.exit_code == 4 and not result.ok


def test_long_command_is_truncated_in_the_message(local: LocalExecutor) -> None:
    with pytest.raises(CommandFailed) as info:
        local.run(["sh", "-c", "exit 1", "x" * 1000])
    assert len(str(info.value)) < 400
    assert "..." in str(info.value)


def test_missing_program_raises_command_failed(local: LocalExecutor) -> None:
    with pytest.raises(CommandFailed, match="cannot start quayside-no-such-program"):
        local.run(["quayside-no-such-program"])


def test_put_bytes_replaces_atomically_with_mode(local: LocalExecutor, tmp_path: Path) -> None:
    target = tmp_path / "config.txt"
    local.put_bytes(b"one", str(target), mode=0o640)
    assert target.read_bytes() == b"one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    inode = target.stat().st_ino
    local.put_bytes(b"two", str(target))
    assert target.read_bytes() == b"two"
    assert target.stat().st_ino != inode  # a new file renamed over the old one
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # existing mode kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.txt"]  # no temp left


def test_put_bytes_new_file_defaults_to_0644(local: LocalExecutor, tmp_path: Path) -> None:
    target = tmp_path / "new"
    local.put_bytes(b"x", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_put_file_copies_content_and_mode(local: LocalExecutor, tmp_path: Path) -> None:
    source = tmp_path / "source.sh"
    source.write_bytes(b"#!/bin/sh\necho hi\n")
    target = tmp_path / "dest.sh"
    local.put_file(source, str(target), mode=0o755)
    assert target.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_put_bytes_into_missing_directory_fails_cleanly(
    local: LocalExecutor, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        local.put_bytes(b"x", str(tmp_path / "missing" / "file"))


def test_readers_never_see_a_partial_file(local: LocalExecutor, tmp_path: Path) -> None:
    target = tmp_path / "big"
    blobs = [bytes([65 + i]) * 2_000_000 for i in range(4)]
    local.put_bytes(blobs[0], str(target))
    torn: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = target.read_bytes()
            if data not in blobs:
                torn.append(len(data))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for blob in blobs * 3:
            local.put_bytes(blob, str(target))
    finally:
        stop.set()
        thread.join()
    assert torn == []


def test_close_is_safe_twice(local: LocalExecutor) -> None:
    local.close()
    local.close()


@pytest.mark.parametrize("streamed", [False, True])
def test_collected_and_streamed_runs_agree(
    local: LocalExecutor, tmp_path: Path, streamed: bool
) -> None:
    """Without a callback the output is collected by communicate(); with one, line by line:
    the results are the same, for bytes and file stdin, and for a child that never reads it."""
    lines: list[tuple[str, str]] = []
    on_output = (lambda kind, line: lines.append((kind, line))) if streamed else None
    big = b"x" * (1 << 20)
    got = local.run(["sh", "-c", "wc -c; echo err >&2"], stdin=big, on_output=on_output)
    assert got.stdout.strip() == str(len(big)) and got.stderr == "err\n"
    source = tmp_path / "in"
    source.write_bytes(b"from a file")
    assert local.run(["cat"], stdin=source, on_output=on_output).stdout == "from a file"
    ignored = local.run(["true"], stdin=big, on_output=on_output)  # never reads its stdin
    assert ignored.exit_code == 0
    with pytest.raises(CommandTimeout):
        local.run(["sleep", "30"], timeout=0.3, on_output=on_output)
    assert bool(lines) == streamed
