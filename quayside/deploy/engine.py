"""The names flows and tasks import from the deploy core, from where they used to live.

The core itself is in modules named for their job: ``release_spec`` (what a deploy or a
rollback sends), ``host_report`` (what happened on a host), ``host_plan`` (facts and plans),
``payload_tar`` and ``rsync_upload`` (how the changed files travel), ``stage_transport``
(the stage round trips), ``host_deploy`` and ``host_rollback`` (one host's steps), ``hooks``,
``health`` and ``switch_back``. New code imports from those.
"""

from __future__ import annotations

from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.host_plan import prepare_plans
from quayside.deploy.host_report import HostReport
from quayside.deploy.host_rollback import rollback_host
from quayside.deploy.release_spec import INLINE_MAX_BYTES, ReleaseSpec, RollbackSpec
from quayside.deploy.switch_back import switch_back

__all__ = [
    "INLINE_MAX_BYTES",
    "HostReport",
    "ReleaseSpec",
    "RollbackSpec",
    "deploy_host",
    "prepare_plans",
    "rollback_host",
    "switch_back",
]
