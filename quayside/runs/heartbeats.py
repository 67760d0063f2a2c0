"""Runs whose heartbeats stopped are marked Crashed by the Prefect server itself.

Prefect 3.8.8 has flow-run heartbeats: every run's engine emits a
``prefect.flow-run.heartbeat`` event every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds
(default 180, at least 30) from a thread of its own, paused runs included. The server has
no built-in zombie detection; Prefect's documented answer is an automation with a proactive
trigger: after a heartbeat, expect another one (or the run's end) within a few intervals,
else change the run's state to Crashed. The window is three of Prefect's default intervals,
since runs started outside the platform's environment (a worker elsewhere, a flow called
in-process) beat at that default. This module keeps that automation on the platform
(:func:`ensure_zombie_automation`), so a run whose process vanished while its worker vanished
too - a killed or lost worker machine, where no crash hook runs - ends Crashed; its lock is
then taken over by the next release and its ledger release reconciled under that lock.

A suspended run (an approval waiting for days, its process gone on purpose) sends a
``prefect.flow-run.Suspended`` event, which satisfies the trigger: it is not crashed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from quayside.runs.prefect_sdk import _client, _run

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

ZOMBIE_AUTOMATION = "quayside: crash flow runs whose heartbeats stopped"
HEARTBEAT_S = 180
"""Prefect's default heartbeat interval (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``)."""
MISSED = 3
"""A run is crashed after this many heartbeat intervals without one."""
WINDOW_S = HEARTBEAT_S * MISSED
"""How long a run may be silent before it is marked Crashed."""
ENDINGS = ("Completed", "Failed", "Cancelled", "Crashed", "Suspended", "Cancelling")


def zombie_automation(
    window_s: float = WINDOW_S,
    *,
    name: str = ZOMBIE_AUTOMATION,
    runs: str | list[str] = "prefect.flow-run.*",
) -> AutomationCore:
    """The automation that marks a run Crashed after ``window_s`` seconds without a heartbeat
    (``runs``: the flow-run resources it watches, every one by default)."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    within = timedelta(seconds=window_s)
    return AutomationCore(
        name=name,
        description=(
            f"A flow run that sent no heartbeat for {within.total_seconds():.0f}s and did "
            "not end is Crashed: its process is gone. Kept by quayside up."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{e}" for e in ENDINGS)},
            match=ResourceSpecification({"prefect.resource.id": runs}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=(
                    f"Crashed: no heartbeat for {within.total_seconds():.0f}s (its process "
                    "and its worker are gone); marked by the platform's heartbeat automation"
                ),
            )
        ],
    )


def ensure_zombie_automation() -> bool:
    """Create the automation unless one of its name exists.

    Returns:
        True if it was created now.

    Raises:
        PrefectUnavailable: the API does not answer.
    """
    automation = zombie_automation()

    async def go() -> bool:
        async with _client() as client:
            if await client.read_automations_by_name(ZOMBIE_AUTOMATION):
                return False
            await client.create_automation(automation)
            return True

    return _run(go())
