"""How a release run tells whoever follows it that its log lines are all in the API.

Prefect ships a run's log lines in batches (every 2 s) and its last batch when the run's
process ends - after the final state, often a tenth of a second or more later. A follower
that stops at the final state would miss those lines; one that waits for the engine's own
last line ("Finished in state ...") waits for the process to end. So a release flow whose body
completed sends its queued lines itself, before Prefect records the final state, and then
labels the run :data:`LABEL` = its ``run_count``. A follower that sees the final state and
this label for the run's current ``run_count`` reads the logs once more and is done.

Only a completed body marks the run: after a failed one Prefect still logs the error and its
traceback, after a "not run" the flow logs why, and those lines come after any mark, so such
runs are followed until the engine's last line arrives, as before. (``run_count`` counts the
times the run went Running, a retry included; a run resumed after a suspension keeps its
count, and a suspended body never marks the run.)
"""

from __future__ import annotations

from typing import Any

#: the flow-run label a release run sets once its log lines are sent
LABEL = "quayside.logs-sent"


def label_value(run_count: int) -> str:
    """The label's value for the attempt ``run_count``."""
    return str(run_count)


def logs_sent(run: dict[str, Any]) -> bool:
    """Whether the flow run (the API's JSON) says this attempt's log lines are all sent."""
    labels = run.get("labels") or {}
    return labels.get(LABEL) == label_value(int(run.get("run_count") or 0))
