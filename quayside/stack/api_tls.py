"""The CA file Prefect's clients load when the platform's API is plain HTTP.

Every Prefect 3.8 client (a flow run opens three before its first task) builds an
``ssl.SSLContext`` from ``PREFECT_API_SSL_CERT_FILE``, or from certifi's bundle of about 150
certificates when that is unset: 35 ms of CPU each, measured here, for a context that a
``http://`` API never uses. ``quayside up`` points the setting at a file holding one
certificate of that bundle (0.6 ms) when its own API is HTTP and the operator set nothing.
An operator's own setting, or an ``https://`` API, is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CERT_FILE_SETTING = "PREFECT_API_SSL_CERT_FILE"
_BEGIN = "-----BEGIN CERTIFICATE-----"
_END = "-----END CERTIFICATE-----"


def needs_api_ca(api_url: str, base: Mapping[str, str]) -> bool:
    """Whether ``quayside up`` should supply the one-certificate CA file."""
    return api_url.startswith("http://") and not base.get(CERT_FILE_SETTING)


def first_certificate(bundle: str) -> str:
    """The first PEM certificate of ``bundle``, with a final newline.

    Raises:
        ValueError: the bundle holds no certificate.
    """
    start = bundle.find(_BEGIN)
    end = bundle.find(_END, start)
    if start < 0 or end < 0:
        raise ValueError("no PEM certificate in the CA bundle")
    return bundle[start : end + len(_END)] + "\n"


def write_api_ca(path: Path) -> Path:
    """Write one certificate of certifi's bundle to ``path`` (atomically) and return it."""
    import certifi

    text = first_certificate(Path(certifi.where()).read_text(encoding="ascii"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, path)
    return path
