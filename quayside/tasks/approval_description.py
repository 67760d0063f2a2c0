"""The Markdown above an approval gate's answer form: the request's table, then the plan."""

from __future__ import annotations

from quayside.auth import approvals as core
from quayside.ledger.models import ApprovalRequest
from quayside.markdown_text import cell, code, inline


def describe_request(
    request: ApprovalRequest,
    *,
    version: str,
    summary_markdown: str,
    flow_run_id: str,
    last_refusal: str | None,
) -> str:
    """The Markdown above the approval form: the request's table, then the plan.

    Every value in the table and the lines around it (names, version, space, the refusal
    reason) is escaped here, so none adds a row, a link or an image; ``summary_markdown`` is
    Markdown its builder escaped (:mod:`quayside.deploy.summary`).
    """
    policy = core.policy_of(request)
    approvers = core.valid_approvers(request)
    excluded = sorted(core.excluded_of(request))
    expires = request.expires_at.strftime("%Y-%m-%d %H:%M UTC") if request.expires_at else "—"
    rows = [
        ("app", code(request.app, in_table=True)),
        ("environment", code(request.env, in_table=True)),
        ("version", code(version, in_table=True)),
        ("requested by", cell(request.requested_by) or "—"),
        ("approvals", f"{len(approvers)} of {request.required_approvals}"),
        (
            "approvers",
            f"{cell(policy.role)} or higher in space {code(request.space, in_table=True)}",
        ),
        ("self-approval", "allowed" if policy.allow_self_approval else "not allowed"),
        *(
            [("may not approve (editors)", ", ".join(cell(u) for u in excluded))]
            if excluded
            else []
        ),
        ("expires", expires),
        ("approval request", f"#{request.id}"),
    ]
    lines = [
        f"## Approve {code(request.app)} {inline(version)} → {code(request.env)}?",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    if approvers:
        lines += [f"Approved so far by: {', '.join(inline(a) for a in approvers)}.", ""]
    if last_refusal:
        lines += [f"> The previous answer was refused: {inline(last_refusal, limit=500)}", ""]
    lines += [
        summary_markdown.strip(),
        "",
        "---",
        "To answer here, get your single-use approval code with "
        f"{code(f'quayside approvals code {flow_run_id}')} and enter it in **code** (never "
        "your token). From a shell: "
        f"{code(f'quayside approve {flow_run_id} [--reject] [-m COMMENT]')}.",
    ]
    return "\n".join(lines)
