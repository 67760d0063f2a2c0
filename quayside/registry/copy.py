"""Copy an image by digest from one registry to another without changing its digest: plan
(read the source's manifests, ask the target which blobs it already has), then apply (mount
or upload only the missing blobs, in parallel and bounded; child manifests, then the
manifest last), then verify (the target resolves the digest — and the tag — to the source's
digest, or the copy is refused).

Nothing is recorded until the verify passes, and a copy cut off midway leaves only whole
blobs behind; run it again and it uploads only what is still missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

from quayside.registry.client import RegistryClient
from quayside.registry.errors import DigestMismatch, RegistryError
from quayside.registry.manifests import Descriptor, Manifest
from quayside.registry.names import check_digest, check_repository, check_tag
from quayside.registry.settings import RegistrySettings

BlobAction = Literal["present", "mount", "upload"]


@dataclass(frozen=True)
class ImageLocation:
    """A repository in a registry: where an image is copied from or to."""

    registry: RegistrySettings
    repository: str

    def __post_init__(self) -> None:
        check_repository(self.repository)

    def __str__(self) -> str:
        return f"{self.registry.host}/{self.repository}"


@dataclass(frozen=True)
class BlobStep:
    descriptor: Descriptor
    action: BlobAction


@dataclass(frozen=True)
class CopyPlan:
    """What a copy will do: the manifests (children first, the copied one last) and, per
    blob, whether the target has it, can mount it, or needs it uploaded."""

    digest: str
    manifests: tuple[Manifest, ...]
    blobs: tuple[BlobStep, ...]
    manifest_present: bool

    def count(self, action: BlobAction) -> int:
        return sum(1 for step in self.blobs if step.action == action)

    @property
    def upload_bytes(self) -> int:
        return sum(s.descriptor.size for s in self.blobs if s.action == "upload")

    def summary(self) -> str:
        """One line for a log or an approval description."""
        kind = "index" if self.manifests[-1].is_index else "image"
        return (
            f"{kind} {self.digest}: {len(self.manifests)} manifest(s), {len(self.blobs)} blob(s) — "
            f"{self.count('present')} present, {self.count('mount')} to mount, "
            f"{self.count('upload')} to upload ({self.upload_bytes / 1e6:.1f} MB)"
        )


@dataclass
class CopyResult:
    """What a copy did. ``uploaded``/``mounted`` list blob digests in completion order."""

    digest: str
    target: str
    manifests: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


BlobCallback = Callable[[Descriptor, BlobAction], None]


def read_manifests(client: RegistryClient, repository: str, digest: str) -> tuple[Manifest, ...]:
    """The manifest at ``digest`` and, for an index, every child manifest — children first.

    Raises:
        ManifestNotFound: the digest (or a child) is not in the repository.
    """
    top = client.get_manifest(repository, digest)
    if not top.is_index:
        return (top,)
    children = tuple(client.get_manifest(repository, c.digest) for c in top.children)
    nested = [c for c in children if c.is_index]
    if nested:
        raise RegistryError(
            client.name, f"{repository}@{digest} nests an index in an index; not copied"
        )
    return (*children, top)


def plan_copy(
    source: RegistryClient,
    source_repository: str,
    target: RegistryClient,
    target_repository: str,
    digest: str,
    max_parallel: int = 8,
) -> CopyPlan:
    """Read the source's manifests, then decide per blob: present, mount (same registry,
    another repository) or upload.

    The target is asked about each blob (``HEAD``, in parallel) only when that can change
    what happens: when it already holds the manifest, it holds every blob (a registry
    refuses a manifest whose blobs are missing); a mount is asked for directly (it succeeds
    whether or not the blob is already linked)."""
    manifests = read_manifests(source, source_repository, digest)
    unique: dict[str, Descriptor] = {}
    for item in manifests:
        for blob in item.blobs:
            unique.setdefault(blob.digest, blob)
    manifest_present = target.manifest_digest(target_repository, digest) == digest
    same_registry = source.settings.url == target.settings.url
    mountable = same_registry and source_repository != target_repository
    if manifest_present or (same_registry and not mountable):
        present = [True] * len(unique)
    elif mountable:
        present = [False] * len(unique)
    else:
        with ThreadPoolExecutor(max_workers=max_parallel) as pool:
            present = list(
                pool.map(lambda d: target.blob_exists(target_repository, d.digest), unique.values())
            )
    steps = tuple(
        BlobStep(d, "present" if have else ("mount" if mountable else "upload"))
        for d, have in zip(unique.values(), present, strict=True)
    )
    return CopyPlan(digest, manifests, steps, manifest_present)


def _copy_blob(
    step: BlobStep,
    source: RegistryClient,
    source_repository: str,
    target: RegistryClient,
    target_repository: str,
) -> tuple[BlobAction, int]:
    """Mount or upload one blob; a declined mount falls back to an upload in the session
    the registry opened for it."""
    blob = step.descriptor
    location = None
    if step.action == "mount":
        location = target.mount_blob(target_repository, blob.digest, source_repository)
        if location is None:
            return "mount", 0
    with source.open_blob(source_repository, blob.digest) as pieces:
        sent = target.upload_blob(target_repository, blob.digest, blob.size, pieces, location)
    return "upload", sent


def apply_copy(
    plan: CopyPlan,
    source: RegistryClient,
    source_repository: str,
    target: RegistryClient,
    target_repository: str,
    *,
    tag: str | None = None,
    max_parallel: int = 8,
    on_blob: BlobCallback | None = None,
) -> CopyResult:
    """Copy the missing blobs (bounded parallelism; the first failure stops the rest), then
    the manifests in order, then verify.

    Raises:
        RegistryUnreachable: a registry went away mid-copy (run the copy again: it resumes).
        DigestMismatch: the target resolves the digest or the tag to another digest.
    """
    result = CopyResult(plan.digest, f"{target.name}/{target_repository}")
    result.present = [s.descriptor.digest for s in plan.blobs if s.action == "present"]
    todo = [s for s in plan.blobs if s.action != "present"]
    lock = threading.Lock()
    stop = threading.Event()

    def one(step: BlobStep) -> None:
        if stop.is_set():
            return
        done, sent = _copy_blob(step, source, source_repository, target, target_repository)
        with lock:
            (result.mounted if done == "mount" else result.uploaded).append(step.descriptor.digest)
            result.bytes_uploaded += sent
        if on_blob is not None:
            on_blob(step.descriptor, done)

    if todo:
        pool = ThreadPoolExecutor(max_workers=min(max_parallel, len(todo)))
        try:
            futures = [pool.submit(one, step) for step in todo]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                stop.set()
                for future in futures:
                    future.cancel()
                error = failed[0].exception()
                assert error is not None
                raise error
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    for item in plan.manifests[:-1]:
        if target.manifest_digest(target_repository, item.digest) != item.digest:
            target.put_manifest(target_repository, item.digest, item)
        result.manifests.append(item.digest)
    top = plan.manifests[-1]
    if not plan.manifest_present:
        target.put_manifest(target_repository, top.digest, top)
    if tag is not None:
        target.put_manifest(target_repository, tag, top)
    result.manifests.append(top.digest)
    verify_copy(target, target_repository, plan.digest, tag)
    return result


def verify_copy(
    target: RegistryClient, repository: str, digest: str, tag: str | None = None
) -> None:
    """Refuse unless the target resolves ``digest`` (and ``tag``) to ``digest`` itself.

    Raises:
        DigestMismatch: it does not (the message has both digests).
    """
    for reference in (digest, tag):
        if reference is None:
            continue
        found = target.manifest_digest(repository, reference)
        if found != digest:
            raise DigestMismatch(
                target.name,
                f"{repository}:{reference} resolves to {found or 'nothing'}, "
                f"not the source's {digest}; the copy is not accepted",
            )


def copy_image(
    source: ImageLocation,
    target: ImageLocation,
    digest: str,
    *,
    tag: str | None = None,
    on_blob: BlobCallback | None = None,
) -> CopyResult:
    """Copy the image (or image index with every platform) ``digest`` from ``source`` to
    ``target``, keeping the digest.

    Args:
        source: registry settings and repository holding the image.
        target: registry settings and repository to copy into (another registry, or another
            repository of the same registry: then blobs are mounted, not uploaded).
        digest: ``sha256:…`` of the manifest or index to copy.
        tag: also point this tag at the digest in the target.
        on_blob: called after each blob mounted or uploaded (progress).

    Returns:
        What was present, mounted and uploaded.

    Raises:
        InvalidImageName: a repository, the tag or the digest breaks the spec grammar.
        RegistryAuthError: a registry refused its credentials (names registry and user).
        ManifestNotFound: the source has no such digest (names it).
        RegistryUnreachable: a registry went away; nothing is verified, a retry resumes.
        DigestMismatch: the target's digest differs from the source's: refused.

    Example:
        ``copy_image(ImageLocation(test_registry, "shop/web"),
        ImageLocation(prod_registry, "shop/web"), "sha256:…", tag="1.4.2")``
    """
    check_digest(digest)
    if tag is not None:
        check_tag(tag)
    parallel = min(source.registry.max_parallel_blobs, target.registry.max_parallel_blobs)
    same = source.registry == target.registry
    with RegistryClient(source.registry) as source_client:
        target_client = source_client if same else RegistryClient(target.registry)
        try:
            source_client.login()
            if not same:
                target_client.login()
            plan = plan_copy(
                source_client,
                source.repository,
                target_client,
                target.repository,
                digest,
                parallel,
            )
            return apply_copy(
                plan,
                source_client,
                source.repository,
                target_client,
                target.repository,
                tag=tag,
                max_parallel=parallel,
                on_blob=on_blob,
            )
        finally:
            if not same:
                target_client.close()
