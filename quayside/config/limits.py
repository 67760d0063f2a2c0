"""Size limits of the config center (config files are small; a large one is a mistake, and
every version is kept)."""

from __future__ import annotations

MAX_FILE_BYTES = 1024 * 1024
"""A config file's content, in UTF-8 bytes."""
MAX_VARIABLE_BYTES = 64 * 1024
"""A variable's value, in UTF-8 bytes."""
MAX_MESSAGE_CHARS = 2000
"""A save message."""
