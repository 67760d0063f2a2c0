"""Every ledger table, in one import (SQLAlchemy 2 typed declarative, SQLite and PostgreSQL).

Importing this package registers every table on :data:`Base.metadata` - what Alembic's
``env.py`` and ``migrate`` compare against - including the config center's
(:mod:`quayside.ledger.config_models`); its names are the ledger's model API. The tables live
in one module per domain: :mod:`.base` (the declarative base and column types),
:mod:`.releases`, :mod:`.approvals`, :mod:`.identity`, :mod:`.audit` and :mod:`.triggers`.
"""

from __future__ import annotations

from quayside.ledger.models.approvals import (
    ApprovalCode,
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    Decision,
)
from quayside.ledger.models.audit import APPEND_ONLY_HINT, AuditEvent, refuse_bulk_audit_changes
from quayside.ledger.models.base import NAMING_CONVENTION, Base, UTCDateTime, utcnow
from quayside.ledger.models.identity import (
    SPACE_LEVEL,
    ApiToken,
    RoleGrant,
    Space,
    TokenPurpose,
    User,
    add_postgresql_options,
)
from quayside.ledger.models.releases import (
    TERMINAL_RELEASE_STATUSES,
    App,
    DeployLock,
    Environment,
    EnvironmentHost,
    Host,
    HostStatus,
    Release,
    ReleaseHost,
    ReleaseKind,
    ReleaseStatus,
)
from quayside.ledger.models.triggers import RunSubmission, SeenRequest, SubmissionStatus

__all__ = [
    "APPEND_ONLY_HINT",
    "NAMING_CONVENTION",
    "SPACE_LEVEL",
    "TERMINAL_RELEASE_STATUSES",
    "ApiToken",
    "App",
    "ApprovalCode",
    "ApprovalDecision",
    "ApprovalRequest",
    "ApprovalStatus",
    "AuditEvent",
    "Base",
    "Decision",
    "DeployLock",
    "Environment",
    "EnvironmentHost",
    "Host",
    "HostStatus",
    "Release",
    "ReleaseHost",
    "ReleaseKind",
    "ReleaseStatus",
    "RoleGrant",
    "RunSubmission",
    "SeenRequest",
    "Space",
    "SubmissionStatus",
    "TokenPurpose",
    "UTCDateTime",
    "User",
    "add_postgresql_options",
    "refuse_bulk_audit_changes",
    "utcnow",
]

from quayside.ledger import config_models  # noqa: E402, F401  (the config center's tables)
