"""The copy task of an image promotion: retried only when a registry went away (each retry
copies only the blobs still missing at the target); bad credentials, a missing digest or a
digest mismatch fail at once."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from quayside.images.promote_copy import copy_promoted
from quayside.images.promote_target import PromoteChoice
from quayside.registry import CopyResult, RegistryUnreachable


def registry_went_away(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a copy cut off by an unreachable registry."""
    try:
        state.result()
    except RegistryUnreachable:
        return True
    except Exception:
        return False
    return False


@task(
    task_run_name="copy {choice.digest}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=registry_went_away,
)
def copy_image_task(choice: PromoteChoice) -> CopyResult:
    """Copy the promoted digest to the target environment's registry and verify it there.

    Args:
        choice: the resolved promotion (registries, repositories, digest, tag).

    Returns:
        What was present, mounted and uploaded.

    Raises:
        quayside.registry.RegistryUnreachable: still unreachable after the retries.
        quayside.registry.DigestMismatch: the target resolves the digest to another one.
    """
    logger = get_run_logger()
    result = copy_promoted(
        choice, on_blob=lambda blob, action: logger.info("%s %s", action, blob.digest)
    )
    logger.info(
        "copied %s to %s: %d blob(s) present, %d mounted, %d uploaded (%.1f MB)",
        choice.digest, result.target, len(result.present), len(result.mounted),
        len(result.uploaded), result.bytes_uploaded / 1e6,
    )  # fmt: skip
    return result
