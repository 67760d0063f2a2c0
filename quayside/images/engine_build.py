"""The build on a Docker engine through the Engine API (``docker.APIClient.build``), its
output streamed line by line to the caller while it runs.

Which engine builds: ``QUAYSIDE_BUILD_DOCKER_HOST``, else ``DOCKER_HOST``, else the local
socket - the worker's own engine, where the layer cache of earlier builds lives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from quayside.images.build_stream import BuildLog
from quayside.images.errors import BuildFailed, EngineUnavailable

BUILD_ENGINE_ENV = "QUAYSIDE_BUILD_DOCKER_HOST"
DEFAULT_ENGINE = "unix:///var/run/docker.sock"


def build_engine_url(environ: Mapping[str, str] | None = None) -> str:
    """The engine images are built on (see the module).

    >>> build_engine_url({"DOCKER_HOST": "unix:///tmp/d.sock"})
    'unix:///tmp/d.sock'
    """
    env = os.environ if environ is None else environ
    return env.get(BUILD_ENGINE_ENV) or env.get("DOCKER_HOST") or DEFAULT_ENGINE


def open_engine(url: str, timeout_s: float = 300) -> Any:
    """A ``docker.APIClient`` for ``url``, checked to answer (close it when done).

    Raises:
        EngineUnavailable: no engine answers there.
    """
    import docker
    from docker.errors import DockerException

    try:
        api = docker.APIClient(base_url=url, version="auto", timeout=int(timeout_s))
    except DockerException as e:
        raise EngineUnavailable(f"Docker engine {url} does not answer: {e}") from e
    return api


def run_build(api: Any, arguments: Mapping[str, Any], on_line: Callable[[str], None]) -> BuildLog:
    """Build with ``arguments`` (:func:`quayside.images.build_request.build_arguments`),
    giving each output line to ``on_line`` as it arrives.

    Returns:
        The read stream (``image_id``, the steps, the cached steps).

    Raises:
        BuildFailed: the Dockerfile failed (the failing step and its error lines) or the
            engine refused the build before its first step (e.g. no Dockerfile there).
        EngineUnavailable: the engine went away.
    """
    from docker.errors import APIError, DockerException

    log = BuildLog(on_line=on_line)
    try:
        for item in api.build(**arguments):
            log.feed(item)
    except APIError as e:
        raise BuildFailed(log.step, str(e.explanation or e), []) from e
    except DockerException as e:
        raise EngineUnavailable(f"Docker engine {api.base_url}: {e}") from e
    log.finish()
    return log
