"""The HTTP edge of the registry client: sends the requests :mod:`quayside.registry.api`
builds, authenticates (Basic, or the distribution spec's Bearer token flow, learnt from the
registry's challenge and cached per scope set), and turns transport failures and refusals into
:mod:`quayside.registry.errors` that name the registry — never the password or a token.

Synchronous (httpx) and safe to share between threads, so a Prefect task can call it and
:func:`quayside.registry.copy.copy_image` can copy blobs in parallel.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache, partial

import httpx

from quayside.registry import api
from quayside.registry.api import ApiRequest
from quayside.registry.auth import (
    Challenge,
    basic_header,
    parse_challenge,
    token_from_answer,
    token_request,
)
from quayside.registry.errors import (
    DigestMismatch,
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    UnsupportedManifest,
)
from quayside.registry.manifests import Manifest, digest_of, parse_manifest
from quayside.registry.settings import RegistrySettings


class RegistryClient:
    """A client for one registry (thread-safe; close it, or use it as a context manager).

    Args:
        settings: address, credentials, timeouts.
        transport: an httpx transport to use instead of the network (tests of exchanges
            documented by a registry's API; never needed against a real one).
    """

    def __init__(
        self, settings: RegistrySettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.name = settings.host
        pool = settings.max_parallel_blobs * 2 + 4
        self._http = httpx.Client(
            base_url=settings.url,
            timeout=httpx.Timeout(settings.timeout_s),
            verify=_ssl_context(settings.verify_tls)
            if settings.url.startswith("https:")
            else False,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "quayside-registry"},
        )
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._challenge_known = False
        self._tokens: dict[tuple[str, ...], str] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def user(self) -> str:
        return self.settings.username or "(anonymous)"

    # -- auth --------------------------------------------------------------------------------

    def login(self) -> None:
        """Check that the registry answers and accepts the credentials (``GET /v2/``).

        Raises:
            RegistryAuthError: wrong username or password (names the registry and the user).
            RegistryUnreachable: no answer.
        """
        response = self.send(api.ping())
        if response.status_code != 200:
            raise RegistryError(self.name, "GET /v2/ failed", status=response.status_code)

    def _has_credentials(self) -> bool:
        return self.settings.username is not None and self.settings.password is not None

    def _authorization(self, scopes: tuple[str, ...], refresh: bool = False) -> str | None:
        """The Authorization value for a request needing ``scopes``: before the registry
        has challenged, Basic when there are credentials (saves the anonymous probe most
        clients send first), else nothing; then whatever its challenge asked for."""
        with self._lock:
            known, challenge = self._challenge_known, self._challenge
        if not known:
            return self._basic() if self._has_credentials() else None
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic()
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, scopes, refresh)
        raise RegistryAuthError(
            self.name, f"asks for {challenge.scheme!r} authentication, which is not supported"
        )

    def _learn(self, response: httpx.Response, used: str | None) -> bool:
        """Record what a response says about auth; True when a 401 asks for something other
        than what ``used`` tried (so one retry can succeed)."""
        if response.status_code != 401:
            with self._lock:
                if not self._challenge_known and used is not None:
                    self._challenge = Challenge(used.split(" ", 1)[0].lower())
                    self._challenge_known = True
                elif not self._challenge_known:
                    self._challenge, self._challenge_known = None, True
            return False
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        with self._lock:
            self._challenge, self._challenge_known = challenge, True
        if challenge is None:
            return False
        if challenge.scheme == "bearer":
            return True  # first token, or an expired one: ask the token service (once)
        return used is None or not used.startswith("Basic ")

    def _basic(self) -> str:
        if self.settings.username is None or self.settings.password is None:
            raise RegistryAuthError(
                self.name, "asks for a username and password and the settings have none"
            )
        return basic_header(self.settings.username, self.settings.password.get_secret_value())

    def _token(self, challenge: Challenge, scopes: tuple[str, ...], refresh: bool) -> str:
        key = tuple(sorted(set(scopes)))
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and not refresh:
            return cached
        try:
            request = token_request(challenge, key)
        except ValueError as e:
            raise RegistryAuthError(self.name, str(e)) from e
        headers = {}
        if self.settings.username is not None and self.settings.password is not None:
            headers["Authorization"] = self._basic()
        response = self._transport_call(
            lambda: self._http.get(request.url, params=list(request.params), headers=headers)
        )
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                self.name,
                f"the token service refused user {self.user!r} for {', '.join(key) or '/v2/'}",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise RegistryAuthError(
                self.name, "the token service failed", status=response.status_code
            )
        try:
            token = token_from_answer(response.json())
        except ValueError as e:
            raise RegistryAuthError(self.name, f"the token service: {e}") from e
        with self._lock:
            self._tokens[key] = token
        return token

    # -- sending -----------------------------------------------------------------------------

    def _transport_call(self, call: Callable[[], httpx.Response]) -> httpx.Response:
        try:
            return call()
        except httpx.TransportError as e:
            raise RegistryUnreachable(self.name, f"no answer ({type(e).__name__}: {e})") from e

    def send(
        self,
        request: ApiRequest,
        content: bytes | Iterable[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send ``request`` with the right credentials; on a 401 learn the challenge again and
        retry once (a body that is an iterator cannot be replayed: it is sent once).

        Returns:
            The response (streamed when ``stream``: close it).

        Raises:
            RegistryAuthError: still 401 — the credentials are wrong for this registry.
            RegistryUnreachable: no answer, or the connection broke.
        """
        replayable = content is None or isinstance(content, bytes)
        for attempt in (0, 1):
            auth = self._authorization(request.scopes, refresh=attempt > 0)
            headers = dict(request.headers)
            if auth is not None:
                headers["Authorization"] = auth
            # params merged into the URL by hand: httpx would drop a location's own query
            # (the registry's signed ``_state``)
            url = (
                self._http.base_url.join(request.path)
                if request.path.startswith("/")
                else httpx.URL(request.path)
            )
            built = self._http.build_request(
                request.method,
                url.copy_merge_params(list(request.params)) if request.params else url,
                headers=headers,
                content=content,
            )
            response = self._transport_call(partial(self._http.send, built, stream=stream))
            retry = self._learn(response, auth)
            if response.status_code != 401:
                return response
            response.close()
            if not (attempt == 0 and replayable and retry):
                break
        raise RegistryAuthError(
            self.name,
            f"refused user {self.user!r}: wrong username or password "
            f"({request.method} {_shown_path(request.path)})",
            status=401,
        )

    def _fail(self, response: httpx.Response, what: str) -> RegistryError:
        detail = _error_text(response)
        status = response.status_code
        if status == 403:
            return RegistryAuthError(
                self.name, f"user {self.user!r} may not {what}{detail}", status=status
            )
        return RegistryError(self.name, f"{what} failed{detail}", status=status)

    # -- manifests ---------------------------------------------------------------------------

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest ``repository:reference`` resolves to (``HEAD``), or None if absent."""
        response = self.send(api.manifest(repository, reference, "HEAD"))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"look up {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return str(digest)
        if ":" in reference:
            return reference
        return self.get_manifest(repository, reference).digest

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest's exact bytes; when ``reference`` is a digest, the bytes are checked
        against it.

        Raises:
            ManifestNotFound: the repository has no such manifest (names it).
            DigestMismatch: the bytes do not hash to the digest asked for.
            UnsupportedManifest: schema 1 or another type this client does not copy.
        """
        response = self.send(api.manifest(repository, reference))
        if response.status_code == 404:
            raise ManifestNotFound(self.name, f"no manifest {repository}@{reference}", status=404)
        if response.status_code != 200:
            raise self._fail(response, f"read manifest {repository}@{reference}")
        body = response.content
        if ":" in reference:
            algorithm = reference.split(":", 1)[0]
            actual = digest_of(body, algorithm)
            if actual != reference:
                raise DigestMismatch(
                    self.name, f"{repository}@{reference} served content with digest {actual}"
                )
            digest = reference
        else:
            digest = str(response.headers.get("Docker-Content-Digest") or digest_of(body))
        try:
            return parse_manifest(body, response.headers.get("Content-Type"), digest)
        except ValueError as e:
            raise UnsupportedManifest(self.name, f"{repository}@{digest}: {e}") from e

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store ``manifest``'s exact bytes under ``reference`` (its digest or a tag).

        Returns:
            The digest the registry reports for what it stored.
        """
        request = api.put_manifest(repository, reference, manifest.media_type)
        response = self.send(request, content=manifest.body)
        if response.status_code not in (200, 201, 202):
            raise self._fail(response, f"store manifest {repository}:{reference}")
        return str(response.headers.get("Docker-Content-Digest") or manifest.digest)

    # -- blobs -------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether ``repository`` has the blob (``HEAD``; a registry answers per repository)."""
        response = self.send(api.blob(repository, digest, "HEAD"))
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, f"look up blob {repository}@{digest}")

    @contextmanager
    def open_blob(self, repository: str, digest: str) -> Iterator[Iterator[bytes]]:
        """The blob's bytes as a stream of pieces (follows a redirect to storage, without
        sending the registry's credentials there).

        Raises:
            RegistryError: the blob is missing (404 names it) or the read fails.
            RegistryUnreachable: the connection broke mid-read.
        """
        response = self.send(api.blob(repository, digest), stream=True)
        try:
            hops = 0
            while response.status_code in (301, 302, 303, 307, 308) and hops < 5:
                location = response.headers.get("Location", "")
                response.close()
                hop = self._http.build_request("GET", location)
                response = self._transport_call(partial(self._http.send, hop, stream=True))
                hops += 1
            if response.status_code != 200:
                response.read()
                if response.status_code == 404:
                    raise RegistryError(
                        self.name, f"blob {digest} is missing from {repository}", status=404
                    )
                raise self._fail(response, f"read blob {repository}@{digest}")
            yield self._pieces(response)
        finally:
            response.close()

    def _pieces(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.TransportError as e:
            raise RegistryUnreachable(self.name, f"blob read cut off ({type(e).__name__})") from e

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> str | None:
        """Mount a blob from another repository of this registry.

        Returns:
            None when mounted (201), else the upload location the registry opened instead.
        """
        response = self.send(api.mount_blob(repository, digest, from_repository))
        if response.status_code == 201:
            return None
        if response.status_code == 202:
            return self._location(response, f"mount into {repository}")
        raise self._fail(response, f"mount blob {digest} into {repository}")

    def start_upload(self, repository: str) -> str:
        """Open an upload session; returns its location."""
        response = self.send(api.start_upload(repository))
        if response.status_code != 202:
            raise self._fail(response, f"start an upload to {repository}")
        return self._location(response, f"start an upload to {repository}")

    def _location(self, response: httpx.Response, what: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(self.name, f"{what}: the registry gave no upload location")
        return str(self._http.base_url.join(location)) if location.startswith("/") else location

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        pieces: Iterable[bytes],
        location: str | None = None,
    ) -> int:
        """Upload a blob in chunks (``PATCH`` each ``settings.chunk_size`` bytes with its
        Content-Range, then ``PUT ?digest=``), streaming ``pieces`` through without holding a
        chunk in memory. The registry hashes what it received and refuses the PUT when the
        digest differs (the spec requires it), so the bytes are not hashed here a second time.

        Args:
            location: an upload session already open (a mount the registry declined).

        Returns:
            The bytes sent.

        Raises:
            DigestMismatch: the content's size or digest is not the one announced.
        """
        if location is None:
            location = self.start_upload(repository)
        source = _Pieces(iter(pieces))
        sent = 0
        while sent < size:
            length = min(self.settings.chunk_size, size - sent)
            request = api.upload_chunk(repository, location, sent, length)
            response = self.send(request, content=source.take(length))
            if response.status_code != 202:
                raise self._fail(response, f"upload {digest} to {repository}")
            location = self._location(response, f"upload {digest} to {repository}")
            sent += length
        if source.more():
            self.send(api.cancel_upload(repository, location)).close()
            raise DigestMismatch(
                self.name,
                f"blob {digest} for {repository}: the source sent more than its {size} bytes; "
                "upload cancelled",
            )
        response = self.send(api.finish_upload(repository, location, digest))
        if response.status_code == 400 and "DIGEST_INVALID" in _error_text(response):
            raise DigestMismatch(
                self.name,
                f"blob {digest} for {repository}: the registry computed another digest for the "
                "bytes received; upload refused",
                status=400,
            )
        if response.status_code not in (201, 204):
            raise self._fail(response, f"finish the upload of {digest} to {repository}")
        return sent


@lru_cache(maxsize=2)
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per process and mode: building one loads the CA bundle (~0.1-0.3 s),
    which would otherwise be paid by every client."""
    return httpx.create_ssl_context(verify=verify)


class _Pieces:
    """Re-cuts a stream of pieces into exact-length request bodies."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._left = b""

    def take(self, length: int) -> Iterator[bytes]:
        """A generator of exactly ``length`` bytes (fewer if the stream ends early: the
        request then fails and the upload is not finished). Whole pieces pass uncopied."""
        remaining = length
        while remaining > 0:
            if not self._left:
                self._left = next(self._pieces, b"")
                if not self._left:
                    return
            if len(self._left) <= remaining:
                piece, self._left = self._left, b""
            else:
                piece, self._left = self._left[:remaining], self._left[remaining:]
            remaining -= len(piece)
            yield piece

    def more(self) -> bool:
        if self._left:
            return True
        self._left = next(self._pieces, b"")
        return bool(self._left)


def _shown_path(path: str) -> str:
    return path.split("?", 1)[0] if path.startswith("/") else httpx.URL(path).path


def _error_text(response: httpx.Response) -> str:
    """The registry's error codes and messages (distribution spec error body), short."""
    try:
        response.read()
        data = response.json()
        errors = data.get("errors", []) if isinstance(data, dict) else []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors[:3])
    except Exception:
        text = ""
    return f": {text[:300]}" if text else ""
