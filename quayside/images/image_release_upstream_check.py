"""Proof that nginx sends the traffic to the new container after an image release's switch.

A 2xx through nginx proves little: the old container answers 2xx too, so a reload that did
not take (a wrong pid file, a reload command that does nothing) would pass. The upstream file
Quayside writes makes nginx name the server each answer came from - ``add_header
X-Quayside-Upstream $upstream_addr always;`` with the upstream's own header of that name
hidden (``proxy_hide_header``), so no app can send it - and this check wants the new slot
there, in several answers in a row (nginx's old workers answer for a moment after a reload).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from email.message import Message

from quayside.config.publish_verify import VerifyFailed

UPSTREAM_HEADER = "X-Quayside-Upstream"
"""The response header nginx adds, naming the ``address:port`` that answered."""
STEADY_ANSWERS = 3
POLL_S = 0.05


def upstreams_named(headers: Message) -> list[str]:
    """Every ``X-Quayside-Upstream`` value of a response (nginx writes ``a, b`` when it
    tried more than one server; each is listed)."""
    found = []
    for value in headers.get_all(UPSTREAM_HEADER) or []:
        found += [v.strip() for v in value.split(",") if v.strip()]
    return found


LOOPBACK_NAMES = ("127.0.0.1", "[::1]")
"""What nginx writes in ``$upstream_addr`` for a server named ``localhost`` (it resolves
names when it loads the file)."""


def names_slot(named: str, slot: str) -> bool:
    """Whether ``named`` (an ``$upstream_addr`` entry) is ``slot`` (``address:port`` as the
    inventory writes it; ``localhost:PORT`` is the loopback address nginx resolved it to)."""
    if named == slot:
        return True
    host, _, port = slot.rpartition(":")
    return host == "localhost" and named in {f"{a}:{port}" for a in LOOPBACK_NAMES}


def _why(url: str, slot: str, named: list[str], who: str) -> str:
    if not named:
        return (
            f"{url} answered without {UPSTREAM_HEADER}: nginx does not run the upstream file "
            "Quayside wrote, or a server/location add_header hides the http block's (add "
            f"`add_header {UPSTREAM_HEADER} $upstream_addr always;` there too)"
        )
    return (
        f"nginx sent {url} to {', '.join(named)}, not to {who} on {slot} "
        "(the reload did not take effect?)"
    )


def verify_upstream(
    url: str,
    slot: str,
    *,
    timeout_s: float = 5,
    steady: int = STEADY_ANSWERS,
    unnamed_ok: bool = False,
    who: str = "the new container",
) -> int:
    """GET ``url`` until ``steady`` answers in a row are 2xx/3xx and name only ``slot`` in
    ``X-Quayside-Upstream``.

    ``unnamed_ok``: an answer naming nobody counts too (a restore: the upstream file put back
    may predate the header - the user's first one, or an older Quayside's - and then only
    another slot named is a failure).

    Returns:
        The number of requests sent.

    Raises:
        VerifyFailed: past ``timeout_s``, naming who answered instead (or that nobody was
            named).
    """
    deadline = time.monotonic() + timeout_s
    sent, good, last = 0, 0, ""
    while True:
        sent += 1
        try:
            with urllib.request.urlopen(url, timeout=min(2.0, timeout_s)) as reply:  # noqa: S310
                reply.read(1_000_000)
                named = upstreams_named(reply.headers)
            if (named or unnamed_ok) and all(names_slot(n, slot) for n in named):
                good += 1
                if good >= steady:
                    return sent
                time.sleep(POLL_S)
                continue
            last = _why(url, slot, named, who)
        except urllib.error.HTTPError as e:
            named = upstreams_named(e.headers) if e.headers is not None else []
            last = f"{url} answered HTTP {e.code}" + (f" from {', '.join(named)}" if named else "")
        except (OSError, ValueError) as e:
            last = f"{url}: {type(e).__name__}: {e}"[:300]
        good = 0
        if time.monotonic() >= deadline:
            raise VerifyFailed(f"upstream check: {last}")
        time.sleep(POLL_S)
