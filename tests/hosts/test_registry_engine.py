"""The Docker Engine of the test bed builds a ``FROM scratch`` + busybox image, pushes it to
the test registry; after a copy by digest, the engine pulls it from the production registry
by that digest and runs it."""

from __future__ import annotations

import secrets
from pathlib import Path

from quayside.registry import ImageLocation, copy_image
from testbed.docker_engine import DockerEngine, build_test_image, push_image
from testbed.registry import RegistryPair

KB = 1024


def test_engine_image_survives_a_copy_by_digest(
    docker_engine: DockerEngine, registries: RegistryPair, tmp_path: Path
) -> None:
    name = f"engine/web-{secrets.token_hex(4)}"
    source, target = registries.source, registries.target
    client = docker_engine.client()
    try:
        build_test_image(client, f"{source.host}/{name}:1.0.0", [16 * KB, 4 * KB], tmp_path)
        digest = push_image(
            client, f"{source.host}/{name}", "1.0.0", source.username, source.password
        )

        result = copy_image(
            ImageLocation(source.settings(), name), ImageLocation(target.settings(), name), digest
        )

        assert result.digest == digest and len(result.uploaded) == 5  # config + 4 layers
        pulled = client.images.pull(
            f"{target.host}/{name}@{digest}",
            auth_config={"username": target.username, "password": target.password},
        )
        assert f"{target.host}/{name}@{digest}" in pulled.attrs["RepoDigests"]
        output = client.containers.run(
            pulled.id,
            ["/bin/busybox", "wc", "-c", "/data/layer0"],
            network_mode="none",
            remove=True,
        )
        assert output.decode().split()[0] == str(16 * KB)
    finally:
        client.close()
