"""The copy step of an image promotion, through the registry client: the copy plan an
approver reads (what the target registry already has) and the copy by digest itself, which
verifies the digest at the target or refuses (:func:`quayside.registry.copy_image`)."""

from __future__ import annotations

from quayside.images.promote_target import PromoteChoice
from quayside.registry import CopyResult, RegistryClient, copy_image, plan_copy
from quayside.registry.copy import BlobCallback


def copy_plan_summary(choice: PromoteChoice) -> str:
    """One line: the manifests and blobs of the digest, how many the target has already.

    Raises:
        quayside.registry.ManifestNotFound: the source no longer has the digest (named).
        quayside.registry.RegistryAuthError: a registry refused its credentials.
        quayside.registry.RegistryUnreachable: a registry does not answer.
    """
    source, target = choice.source, choice.target
    with RegistryClient(source.registry) as s, RegistryClient(target.registry) as t:
        s.login()
        t.login()
        plan = plan_copy(s, source.repository, t, target.repository, choice.digest)
    return plan.summary()


def copy_promoted(choice: PromoteChoice, on_blob: BlobCallback | None = None) -> CopyResult:
    """Copy the promoted digest (and the version's tag, where it is one) to the target's
    registry; only the blobs the target lacks travel, so a retry after a failure resumes.

    Raises:
        quayside.registry.RegistryUnreachable: a registry went away (nothing verified).
        quayside.registry.DigestMismatch: the target holds another digest: refused.
    """
    return copy_image(choice.source, choice.target, choice.digest, tag=choice.tag, on_blob=on_blob)
