"""Checking that a service serves what was published, from the controller: dnsmasq by asking
the host's server for every changed record (dnspython), nginx with an HTTP probe. Each check
keeps trying until its deadline, because a reload is asynchronous (dnsmasq re-reads its files
after the SIGHUP returns) and a restart leaves the port closed for a moment."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Literal

from quayside.config.dns_records import RecordChange
from quayside.errors import QuaysideError

POLL_S = 0.02
QUERY_TIMEOUT_S = 0.5
LIVENESS_NAME = "quayside-verify.invalid"


class VerifyFailed(QuaysideError):
    """The service does not serve what it should (what it answered is in the message)."""


def _answer(server: str, port: int, name: str, rdtype: str) -> frozenset[str]:
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(name, rdtype)
    reply = dns.query.udp(query, server, port=port, timeout=QUERY_TIMEOUT_S)
    wanted = dns.rdatatype.from_text(rdtype)
    return frozenset(
        rdata.to_text() for rrset in reply.answer if rrset.rdtype == wanted for rdata in rrset
    )


def _addresses(server: str, port: int, name: str, families: set[str]) -> frozenset[str]:
    found: set[str] = set()
    for rdtype in sorted(families):
        found |= _answer(server, port, name, rdtype)
    return frozenset(found)


def _families(change: RecordChange) -> set[str]:
    return {"AAAA" if ":" in a else "A" for a in change.before | change.after} or {"A"}


def verify_dns(
    server: str,
    port: int,
    changes: Sequence[RecordChange],
    *,
    expect: Literal["after", "before"] = "after",
    timeout_s: float = 5,
) -> int:
    """Ask ``server`` for every changed name until each answers with the addresses it should
    (``after`` the publish, or ``before`` it when checking a restore); with no changed names,
    until the server answers at all.

    Returns:
        The number of queries sent.

    Raises:
        VerifyFailed: past ``timeout_s``, naming the first name that answers wrongly.
    """
    deadline = time.monotonic() + timeout_s
    sent = 0
    pending = list(changes)
    last = ""
    while True:
        try:
            if not pending and not changes:
                sent += 1
                _answer(server, port, LIVENESS_NAME, "A")
                return sent
            still = []
            for change in pending:
                want = change.after if expect == "after" else change.before
                sent += len(_families(change))
                got = _addresses(server, port, change.name, _families(change))
                if got != want:
                    still.append(change)
                    last = (
                        f"{change.name} answers {', '.join(sorted(got)) or 'nothing'}, "
                        f"expected {', '.join(sorted(want)) or 'nothing'}"
                    )
            pending = still
            if not pending:
                return sent
        except Exception as e:  # a timeout or a refused port while the service restarts
            last = f"no answer from {server}:{port} ({type(e).__name__})"
        if time.monotonic() >= deadline:
            raise VerifyFailed(f"DNS verify against {server}:{port}: {last}")
        time.sleep(POLL_S)


STEADY_ANSWERS = 3


def verify_http(
    url: str, text: str | None = None, *, timeout_s: float = 5, steady: int = STEADY_ANSWERS
) -> None:
    """GET ``url`` until it answers 2xx/3xx (containing ``text`` when given) ``steady`` times
    in a row: after a reload, nginx's old workers keep accepting for a moment and answer
    with the old configuration, so one good answer does not mean every answer is.

    Raises:
        VerifyFailed: past ``timeout_s``, with the last status or error.
    """
    deadline = time.monotonic() + timeout_s
    last = ""
    good = 0
    while True:
        good += 1
        try:
            with urllib.request.urlopen(url, timeout=min(2.0, timeout_s)) as reply:  # noqa: S310
                body = reply.read(1_000_000).decode("utf-8", errors="replace")
                if text is None or text in body:
                    if good >= steady:
                        return
                    time.sleep(POLL_S * 2)
                    continue
                last = f"HTTP {reply.status} without {text[:60]!r}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            last = f"{type(e).__name__}: {e}"[:200]
        good = 0
        if time.monotonic() >= deadline:
            raise VerifyFailed(f"HTTP verify of {url}: {last}")
        time.sleep(POLL_S * 5)
