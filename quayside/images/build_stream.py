"""The engine's build output, read as it streams: whole lines (the engine splits them
anywhere), the step under way, which steps came from the layer cache, the built image id, and
a failure turned into :class:`~quayside.images.errors.BuildFailed` naming the failing step with
the lines it printed.

The classic builder's decoded stream is a sequence of JSON objects: ``{"stream": text}`` (the
output, including ``Step 2/5 : COPY …`` and `` ---> Using cache``), ``{"aux": {"ID": …}}``
(the image id), ``{"error": …, "errorDetail": {…}}`` (the build failed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quayside.images.errors import BuildFailed

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STEP = re.compile(r"Step (\d+/\d+) : (.*)")
USING_CACHE = " ---> Using cache"
ERROR_LINES = 20
"""How many of the failing step's output lines an error keeps."""


@dataclass
class BuildLog:
    """Reads one build's stream; ``on_line`` gets every output line as it completes.

    Example:
        >>> log = BuildLog()
        >>> for item in ({"stream": "Step 1/2 : FROM scratch"}, {"stream": "\\n"},
        ...              {"stream": " ---> Using cache\\n"}, {"aux": {"ID": "sha256:ab"}}):
        ...     log.feed(item)
        >>> log.finish(), log.cached_steps
        ('sha256:ab', ['1/2 FROM scratch'])
    """

    on_line: Callable[[str], None] = lambda line: None
    lines: list[str] = field(default_factory=list)
    step: str | None = None
    """The step under way: ``2/5 COPY app /app``."""
    steps: list[str] = field(default_factory=list)
    cached_steps: list[str] = field(default_factory=list)
    image_id: str | None = None
    error: str | None = None
    _partial: str = ""
    _step_output: list[str] = field(default_factory=list)

    def feed(self, item: Mapping[str, Any]) -> None:
        """One decoded JSON object of the stream."""
        text = item.get("stream")
        if isinstance(text, str):
            self._text(text)
        aux = item.get("aux")
        if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
            self.image_id = str(aux["ID"])
        if item.get("error") or item.get("errorDetail"):
            self._flush()
            detail = item.get("errorDetail")
            message = item.get("error") or (
                detail.get("message") if isinstance(detail, Mapping) else None
            )
            self.error = _clean(str(message or "the build failed")).strip()
            self._emit(f"ERROR: {self.error}")

    def _text(self, text: str) -> None:
        chunks = (self._partial + text).split("\n")
        self._partial = chunks.pop()
        for chunk in chunks:
            self._line(_clean(chunk).rstrip("\r"))

    def _flush(self) -> None:
        if self._partial:
            rest, self._partial = self._partial, ""
            self._line(_clean(rest))

    def _line(self, line: str) -> None:
        match = _STEP.match(line)
        if match is not None:
            self.step = f"{match[1]} {match[2]}"
            self.steps.append(self.step)
            self._step_output = []
        elif line.startswith(USING_CACHE) and self.step is not None:
            self.cached_steps.append(self.step)
        elif line.strip() and not line.startswith((" ---> ", "Removing intermediate container")):
            self._step_output.append(line)
        self._emit(line)

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        self.on_line(line)

    def finish(self) -> str:
        """The built image's id once the stream ended.

        Raises:
            BuildFailed: the stream reported an error (or ended without an image): the failing
                step and the last lines it printed.
        """
        self._flush()
        if self.error is None and self.image_id is None:
            self.error = "the engine's build output ended without an image id"
        if self.error is not None:
            raise BuildFailed(self.step, self.error, self._step_output[-ERROR_LINES:])
        assert self.image_id is not None
        return self.image_id


def _clean(text: str) -> str:
    """``text`` without terminal colour codes (the engine colours a step's stderr red)."""
    return _ANSI.sub("", text)
