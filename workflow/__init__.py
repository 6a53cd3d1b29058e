"""Control plane: recommendation lifecycle, approvals and overrides, evidence, audit, access, events, outbox.

Public modules (import from the defining module, e.g. ``from workflow.lifecycle import propose``):

* :mod:`workflow.schemas` -- typed inputs/outputs (``RecommendationIn``, ``ApproveIn``, ...);
* :mod:`workflow.lifecycle` -- the state machine (``propose``, ``route``, ``approve``, ``override``, ...);
* :mod:`workflow.queue` -- the planner's work queue: filter, sort, search, paginate and count in SQL;
* :mod:`workflow.access` -- API keys (expiry, rotation), roles, tenants;
* :mod:`workflow.rights` -- server-side valuation, approval limits, four-eyes, capped auto-approval;
* :mod:`workflow.sessions` -- planner-page sessions (opaque tokens, idle/absolute expiry, CSRF tokens);
* :mod:`workflow.usage` -- durable usage metering and daily quotas;
* :mod:`workflow.webhooks` -- webhook targets and secrets per tenant and system;
* :mod:`workflow.exceptions` -- exceptions as workflow objects (open, assign, acknowledge, resolve, dismiss,
  SLA and escalation); :func:`open_exception` is how other code raises one;
* :mod:`workflow.evidence`, :mod:`workflow.audit` -- immutable evidence and the hash-chained audit log;
* :mod:`workflow.events` -- the ordered per-tenant event log with consumer cursors;
* :mod:`workflow.outbox`, :mod:`workflow.dispatcher`, :mod:`workflow.adapters` -- integration-safe writeback;
* :mod:`workflow.telemetry` -- accuracy, inventory, supplier, override and request figures; Prometheus text;
* :mod:`workflow.errors` -- the errors the HTTP layer maps to status codes.

Tables live in :mod:`workflow._models`; their migration chain in ``workflow/migrations/versions``, registered
with the data layer as :data:`MIGRATIONS`.
"""

from pathlib import Path

from features.store import register_migrations

__all__ = [
    "MIGRATIONS",
    "access",
    "adapters",
    "audit",
    "dispatcher",
    "errors",
    "events",
    "evidence",
    "exceptions",
    "lifecycle",
    "open_exception",
    "outbox",
    "queue",
    "rights",
    "schemas",
    "sessions",
    "telemetry",
    "usage",
    "webhooks",
]

#: The control plane's migration chain (its tables are in ``workflow._models``).
MIGRATIONS = register_migrations(
    "workflow", Path(__file__).resolve().parent / "migrations" / "versions", models=("workflow._models",)
)


def __getattr__(name: str):
    """``workflow.open_exception``: :func:`workflow.exceptions.open_exception`, imported when first used."""
    if name == "open_exception":
        from workflow.exceptions import open_exception

        return open_exception
    raise AttributeError(f"module 'workflow' has no attribute {name!r}")
