"""Planner pages served by the decision API under ``/ui`` (server-rendered, plots as inline SVG, no CDN)."""

from serving.pages import _monitoring  # noqa: F401  (adds /ui/monitoring to the router)
from serving.pages._views import router, setup_app

__all__ = ["router", "setup_app"]
