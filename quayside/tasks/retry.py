"""When a failed task is worth retrying: transient host trouble yes, bad credentials or a
command that ran and failed no (retrying them only delays the message)."""

from __future__ import annotations

from typing import Any

from quayside.errors import AuthError, HostKeyError, InputError, NotFoundError, QuaysideError

PERMANENT: tuple[type[Exception], ...] = (AuthError, HostKeyError, InputError, NotFoundError)


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
