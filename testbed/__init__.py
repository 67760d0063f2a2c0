"""The test bed: fixtures that start real components on loopback (sshd hosts, PostgreSQL, a
running platform, an S3 endpoint, ...) and the senders' recorded request payloads, shared by the
tests (every module here is a pytest plugin, see tests/conftest.py) and the benchmarks."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
