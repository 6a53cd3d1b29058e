"""Liveness and readiness: ``/healthz`` answers while the process runs, ``/readyz`` when it can serve."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no I/O; also the no-op endpoint the serving benchmark compares with)."""
    return {"status": "ok"}


def _check_db(request: Request) -> str:
    from sqlalchemy import text

    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        from features.settings import get_settings
        from features.store import make_engine

        settings = getattr(request.app.state, "settings", None) or get_settings()
        engine = request.app.state.engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the state store answers and, where a model is served, the model deployment answers."""
    checks: dict[str, Any] = {}
    ready = True
    try:
        checks["database"] = await asyncio.to_thread(_check_db, request)
    except Exception as exc:  # noqa: BLE001 - report, do not crash the probe
        checks["database"] = f"error: {type(exc).__name__}: {exc}"
        ready = False
    forecaster = getattr(request.app.state, "forecaster", None)
    if forecaster is None:
        checks["model"] = "not served"
    else:
        try:
            info = await asyncio.wait_for(forecaster.info(), timeout=5.0)
            checks["model"] = {"version": info.get("version"), "horizon": info.get("horizon")}
        except Exception as exc:  # noqa: BLE001
            checks["model"] = f"error: {type(exc).__name__}: {exc}"
            ready = False
    return JSONResponse(
        status_code=200 if ready else 503,
        content={"ready": ready, "checks": checks},
        headers=None if ready else {"Retry-After": "5"},
    )
