"""When a failed task is worth retrying: transient host trouble yes, bad credentials or a
command that ran and failed no (retrying them only delays the message)."""

from __future__ import annotations

from typing import Any

from quayside.errors import (
    AuthError,
    ConnectionLost,
    HostKeyError,
    InputError,
    NotFoundError,
    QuaysideError,
)

#: not retried. A connection lost under a running command is among them: the command may have
#: done part of its work (running it again is not safe to do blindly), and a retry's failure
#: ("cannot connect" to a host that is down now) would replace what happened first. No
#: read-only step goes through this condition: facts and health checks run inside the per-host
#: deploy and rollback tasks (no Prefect retries; health checks retry in quayside.deploy.health)
PERMANENT: tuple[type[Exception], ...] = (
    AuthError,
    HostKeyError,
    InputError,
    NotFoundError,
    ConnectionLost,
)


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the failure is permanent."""
    try:
        state.result()
    except PERMANENT:
        return False
    except QuaysideError:
        return True
    except Exception:
        return True
    return True
