"""What goes wrong building and pushing an image, as errors a user can act on."""

from __future__ import annotations

from collections.abc import Sequence

from quayside.errors import InputError, QuaysideError


class ImageError(QuaysideError):
    """A failure of an image build or push."""


class VersionRefused(InputError):
    """The version a build would get is not acceptable (already built from other code)."""


class BuildFailed(ImageError):
    """The Dockerfile failed: the message names the failing step and its error lines."""

    hint = "fix the Dockerfile (or the step's command) and build again"

    def __init__(self, step: str | None, error: str, output: Sequence[str]) -> None:
        self.step = step
        self.error = error
        self.output = list(output)
        where = f"step {step}" if step else "before the first step"
        lines = "\n".join(f"  {line}" for line in self.output)
        text = f"image build failed at {where}: {error}"
        if lines:
            text += f"\n{lines}"
        super().__init__(text)


class PushFailed(ImageError):
    """The engine could not push the image; the message names the registry and the user."""

    hint = "check the environment's registry settings (url, username, password secret)"

    def __init__(self, registry: str, user: str, image: str, error: str) -> None:
        self.registry = registry
        self.user = user
        super().__init__(f"registry {registry}: push of {image} as user {user!r} failed: {error}")


class EngineUnavailable(ImageError):
    """The Docker engine that builds did not answer."""

    hint = (
        "start the Docker engine, or point QUAYSIDE_BUILD_DOCKER_HOST (or DOCKER_HOST) "
        "at one this worker can reach"
    )


class TrafficNotRestored(ImageError):
    """A failed traffic switch whose restore failed too: nginx may still send requests to the
    new container, which is therefore left running."""

    hint = (
        "fix nginx on the host (its error log, `nginx -t`), then release again or roll back; "
        "the new container was left running because nginx may still send it traffic"
    )


class ArtifactMissing(ImageError):
    """The app declares an artifact path the built image does not have."""

    hint = "fix image.build.artifact_path in quayside.yaml, or make the Dockerfile create it"
