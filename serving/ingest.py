"""Ingest a file and announce it on the tenant's event log: the one ingest hand-off of the serving callers.

``features`` (the data layer) knows nothing of the workflow's event log, so the announcement is made here, by
the caller, after the batch is stored: ``sales.ingested`` / ``inventory.ingested`` (topics ``sales`` and
``inventory``), ``lead_times.ingested`` / ``purchase_orders.ingested`` (topic ``supplier``); see
docs/events.md. The CLI, the demo and ``replenish plan`` all ingest through :func:`ingest_and_announce`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

__all__ = ["ingest_and_announce"]

_log = logging.getLogger(__name__)


def ingest_and_announce(
    kind: str,
    path: str | Path,
    *,
    tenant: str | None = None,
    engine=None,
    settings=None,
    progress: Callable[[str], None] | None = None,
):
    """:func:`features.ingest.ingest`, then the batch's event (when rows were stored); returns its result."""
    from features.ingest import ingest

    if settings is None:
        from features.settings import get_settings

        settings = get_settings()
    tenant = tenant or settings.tenant
    result = ingest(kind, path, tenant=tenant, engine=engine, settings=settings, progress=progress)
    if engine is not None and result.batch_id:
        from features.store import session_scope
        from workflow.events import publish_ingest

        try:
            with session_scope(engine) as s:
                publish_ingest(s, tenant, dataclasses.asdict(result))
        except Exception:  # the rows are stored; a missing announcement is logged, not a failed ingest
            _log.warning("ingest %s: the event was not published", result.batch_id, exc_info=True)
    return result
