"""The check after an image release's traffic switch, against a loopback server whose
``X-Quayside-Upstream`` answers the test scripts (as nginx adds it from the upstream file):
the new slot must be named in answers in a row; an old slot, no header, or a 5xx fail with
what answered named."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quayside.config.publish_verify import VerifyFailed
from quayside.images.image_release_upstream_check import (
    UPSTREAM_HEADER,
    names_slot,
    verify_upstream,
)

NEW, OLD = "127.0.0.1:18081", "127.0.0.1:18080"


class _Scripted(ThreadingHTTPServer):
    answers: list[tuple[int, list[str]]]
    served: int


class _Handler(BaseHTTPRequestHandler):
    server: _Scripted

    def do_GET(self) -> None:
        answers = self.server.answers
        status, named = answers[min(self.server.served, len(answers) - 1)]
        self.server.served += 1
        self.send_response(status)
        for value in named:
            self.send_header(UPSTREAM_HEADER, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    server = _Scripted(("127.0.0.1", 0), _Handler)
    server.answers, server.served = [(200, [NEW])], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _Scripted) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def test_the_new_slot_named_in_answers_in_a_row(scripted: _Scripted) -> None:
    scripted.answers = [(200, [OLD]), (200, [NEW]), (200, [OLD]), (200, [NEW])]
    assert verify_upstream(_url(scripted), NEW, timeout_s=5) == 6
    assert scripted.served == 6  # an old worker's answer between new ones started over


def test_the_old_container_still_answering_fails_naming_it(scripted: _Scripted) -> None:
    scripted.answers = [(200, [OLD])]
    with pytest.raises(VerifyFailed, match=f"sent {_url(scripted)} to {OLD}, not to the new "
                       f"container on {NEW}"):  # fmt: skip
        verify_upstream(_url(scripted), NEW, timeout_s=0.5)


def test_an_answer_without_the_header_fails_saying_what_to_add(scripted: _Scripted) -> None:
    scripted.answers = [(200, [])]
    with pytest.raises(VerifyFailed, match=f"without {UPSTREAM_HEADER}.*add_header"):
        verify_upstream(_url(scripted), NEW, timeout_s=0.5)


def test_a_second_value_besides_the_new_slot_is_not_enough(scripted: _Scripted) -> None:
    """nginx writes ``a, b`` when it tried two servers; every one named must be the new."""
    scripted.answers = [(200, [f"{OLD}, {NEW}"])]
    with pytest.raises(VerifyFailed, match=f"to {OLD}, {NEW}, not"):
        verify_upstream(_url(scripted), NEW, timeout_s=0.5)


def test_an_error_status_fails_even_from_the_new_slot(scripted: _Scripted) -> None:
    scripted.answers = [(502, [NEW])]
    with pytest.raises(VerifyFailed, match=f"HTTP 502 from {NEW}"):
        verify_upstream(_url(scripted), NEW, timeout_s=0.5)


def test_a_restore_accepts_answers_naming_nobody_but_not_another_slot(
    scripted: _Scripted,
) -> None:
    """The upstream file a restore puts back may predate the header (the user's own first
    file): unnamed answers pass there; the new slot still named fails."""
    scripted.answers = [(200, [])]
    assert verify_upstream(_url(scripted), OLD, timeout_s=5, unnamed_ok=True) == 3
    scripted.answers, scripted.served = [(200, [NEW])], 0
    with pytest.raises(VerifyFailed, match=f"to {NEW}, not to the old container on {OLD}"):
        verify_upstream(
            _url(scripted), OLD, timeout_s=0.5, unnamed_ok=True, who="the old container"
        )


def test_a_localhost_slot_is_the_loopback_address_nginx_resolved_it_to(
    scripted: _Scripted,
) -> None:
    """nginx resolves ``server localhost:18081`` when it loads the file: ``$upstream_addr``
    names 127.0.0.1:18081 (or [::1]:18081), which is that slot; another port is not."""
    scripted.answers = [(200, ["127.0.0.1:18081"]), (200, ["[::1]:18081"])]
    assert verify_upstream(_url(scripted), "localhost:18081", timeout_s=5) == 3
    scripted.answers, scripted.served = [(200, ["127.0.0.1:18080"])], 0
    with pytest.raises(VerifyFailed, match="not to the new container on localhost:18081"):
        verify_upstream(_url(scripted), "localhost:18081", timeout_s=0.5)
    assert names_slot("127.0.0.1:18081", "localhost:18081")
    assert not names_slot("10.0.0.1:18081", "localhost:18081")
    assert not names_slot("127.0.0.1:18081", "127.0.0.2:18081")
