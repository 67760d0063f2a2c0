"""Where the project's files are: the directory holding ``quayside/``, ``prefect.yaml`` and
``pyproject.toml``. Deployment entrypoints (``quayside/flows/*.py``) are relative to it."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
