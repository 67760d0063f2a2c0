"""How to reach one registry: the settings a Prefect block (or quayside.yaml) holds and a
client is built from. Blocks configure, tasks act: this is data, :mod:`client` does the I/O."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class RegistrySettings(BaseModel):
    """One registry's address and credentials.

    Example:
        ``RegistrySettings(url="https://harbor.example.com", username="robot$ci",
        password=SecretStr("…"))``
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL, http(s)://host[:port], no path")
    username: str | None = Field(default=None, description="User for Basic or token auth")
    password: SecretStr | None = Field(default=None, description="Password or robot token")
    verify_tls: bool = Field(default=True, description="Verify the HTTPS certificate")
    timeout_s: float = Field(default=60, gt=0, description="Per-request timeout (seconds)")
    max_parallel_blobs: int = Field(
        default=8, ge=1, le=32, description="Blobs copied at once (bounded parallelism)"
    )
    chunk_size: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes per PATCH of a chunked blob upload",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        from quayside.registry.names import REGISTRY_HOST

        parts = urlsplit(value.rstrip("/"))
        if parts.scheme not in {"http", "https"} or REGISTRY_HOST.fullmatch(parts.netloc) is None:
            raise ValueError(f"{value!r} is not http(s)://host[:port]")
        if parts.path or parts.query or parts.fragment:
            raise ValueError(f"{value!r} has a path; give the registry's base URL only")
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        """``host:port`` as it appears in image names and messages."""
        return self.url.split("://", 1)[1]
