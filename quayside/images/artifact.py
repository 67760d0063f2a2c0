"""The sha256 of a file inside a built image (the seed's war file), read from the image itself:
a container is created from it, never started, and the file is streamed out of it with the
Engine API's archive endpoint (``get_archive``), hashed on the way, then the container is
removed."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from typing import Any

from quayside.images.errors import ArtifactMissing

_CHUNK = 1024 * 1024


class _ChunkReader:
    """A read()-able view of an iterator of byte chunks (for ``tarfile``'s stream mode)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def sha256_of_tar_file(chunks: Iterator[bytes], path: str) -> str:
    """The sha256 of the one regular file of a tar stream (what ``get_archive`` of a file
    sends).

    Raises:
        ArtifactMissing: the stream holds no regular file (a directory, a link).
    """
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:  # type: ignore[call-overload]
        for member in archive:
            if member.issym() or member.islnk():
                raise ArtifactMissing(
                    f"artifact {path} in the image is a link to {member.linkname}",
                    hint="give the file's own path in image.build.artifact_path",
                )
            if not member.isfile():
                raise ArtifactMissing(f"artifact {path} in the image is not a regular file")
            stream = archive.extractfile(member)
            assert stream is not None
            digest = hashlib.sha256()
            while block := stream.read(_CHUNK):
                digest.update(block)
            return "sha256:" + digest.hexdigest()
    raise ArtifactMissing(f"artifact {path}: the image sent no file")


def artifact_sha256(api: Any, image_id: str, path: str) -> str:
    """The sha256 (``sha256:<hex>``) of ``path`` in the image ``image_id``.

    Raises:
        ArtifactMissing: the image has no such file, or it is not a regular file.
    """
    from docker.errors import NotFound

    # never started: the command only has to be given (an image may declare none)
    container = api.create_container(image_id, command=["/quayside-never-started"])
    try:
        try:
            chunks, _stat = api.get_archive(container["Id"], path, chunk_size=_CHUNK)
        except NotFound as e:
            raise ArtifactMissing(f"artifact {path} is not in the built image") from e
        return sha256_of_tar_file(iter(chunks), path)
    finally:
        api.remove_container(container["Id"], force=True)
