"""Registry authentication, as the distribution spec's token flow and HTTP Basic describe it:
parse the ``WWW-Authenticate`` challenge of a 401, build the Basic header or the token
request (realm, service, scopes), read the token from the answer. Pure functions; the client
sends what they build."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))')


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``scheme`` is ``basic`` or ``bearer`` (lowercase)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str | None) -> Challenge | None:
    """The challenge in ``header`` (None when there is none).

    >>> parse_challenge('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"')
    Challenge(scheme='bearer', params={'realm': 'https://a/token', 'service': 'reg', \
'scope': 'repository:x:pull'})
    """
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM.finditer(rest)
    }
    params = {k: v.replace('\\"', '"') for k, v in params.items()}
    return Challenge(scheme.lower(), params)


def basic_header(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic."""
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def repository_scope(repository: str, actions: Sequence[str]) -> str:
    """A token scope, e.g. ``repository:team/app:pull,push``."""
    return f"repository:{repository}:{','.join(actions)}"


@dataclass(frozen=True)
class TokenRequest:
    """``GET url`` with ``params`` (repeated ``scope``), Basic auth when there are credentials."""

    url: str
    params: tuple[tuple[str, str], ...]


def token_request(challenge: Challenge, scopes: Sequence[str]) -> TokenRequest:
    """The token request for ``scopes`` answering a Bearer ``challenge``.

    Raises:
        ValueError: the challenge has no realm (no token endpoint to ask).
    """
    if not challenge.realm:
        raise ValueError("the Bearer challenge names no realm (token endpoint)")
    params: list[tuple[str, str]] = []
    if challenge.params.get("service"):
        params.append(("service", challenge.params["service"]))
    params += [("scope", scope) for scope in sorted(set(scopes))]
    return TokenRequest(challenge.realm, tuple(params))


def token_from_answer(data: Any) -> str:
    """The bearer token in a token endpoint's JSON (``token``, or OAuth2's ``access_token``).

    Raises:
        ValueError: neither is there.
    """
    if isinstance(data, dict):
        for key in ("token", "access_token"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    raise ValueError("the token endpoint's answer has no token")
