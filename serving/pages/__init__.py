"""Planner pages served by the decision API under ``/ui`` (server-rendered, plots as inline SVG, no CDN)."""

from serving.pages._exception_views import router as _exception_router
from serving.pages._views import router, setup_app

router.include_router(_exception_router)

__all__ = ["router", "setup_app"]
