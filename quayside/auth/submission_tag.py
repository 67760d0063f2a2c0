"""The Prefect tag of a run created for a recorded submission.

Every trigger that records who submitted a run (:mod:`quayside.runs.submission`) creates the
run with this tag, before the record exists. When the run starts and finds no submission, the
tag tells it apart from a run an operator started in the Prefect UI: the record failed (or its
trigger died before writing it), and the run refuses to act
(:func:`quayside.auth.run_start.confirm_submitter`) instead of going on as the operator's.
"""

from __future__ import annotations

SUBMISSION_TAG = "quayside:submitted"
