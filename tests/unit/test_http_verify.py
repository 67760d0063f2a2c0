"""The HTTP probe config publish runs after an nginx reload, against a loopback server whose
answers the test scripts (old workers answering the old text for a moment)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quayside.config.publish_verify import VerifyFailed, verify_http


class _Scripted(ThreadingHTTPServer):
    answers: list[str]
    served: int


class _Handler(BaseHTTPRequestHandler):
    server: _Scripted

    def do_GET(self) -> None:
        answers = self.server.answers
        text = answers[min(self.server.served, len(answers) - 1)]
        self.server.served += 1
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    server = _Scripted(("127.0.0.1", 0), _Handler)
    server.answers, server.served = ["v2"], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _Scripted) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def test_one_new_answer_between_old_ones_is_not_enough(scripted: _Scripted) -> None:
    scripted.answers = ["v1", "v2", "v1", "v2", "v2", "v2"]
    verify_http(_url(scripted), "v2", timeout_s=5)
    assert scripted.served == 6  # it kept asking until three answers in a row were new


def test_the_old_text_past_the_deadline_fails_naming_what_it_answered(
    scripted: _Scripted,
) -> None:
    scripted.answers = ["v1"]
    with pytest.raises(VerifyFailed, match=r"HTTP verify of .*: HTTP 200 without 'v2'"):
        verify_http(_url(scripted), "v2", timeout_s=0.3)


def test_a_closed_port_fails_naming_the_error() -> None:
    with pytest.raises(VerifyFailed, match="ConnectionRefusedError|URLError"):
        verify_http("http://127.0.0.1:9/", timeout_s=0.2)
