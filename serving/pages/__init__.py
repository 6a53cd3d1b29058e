"""Planner pages served by the decision API under ``/ui`` (server-rendered, plots as inline SVG, no CDN)."""

from fastapi import APIRouter

from serving.pages import _monitoring  # noqa: F401  (adds /ui/monitoring to the views' router)
from serving.pages._dashboards import router as _dashboards_router
from serving.pages._exception_views import router as _exception_router
from serving.pages._forecast_report import router as _forecast_report_router
from serving.pages._item import router as _item_router
from serving.pages._queue import router as _queue_router
from serving.pages._suppliers import router as _suppliers_router
from serving.pages._views import router as _views_router
from serving.pages._views import setup_app
from serving.pages._whatif import router as _whatif_router

__all__ = ["router", "setup_app"]

#: Every page under ``/ui``: queue, recommendation, what-if, item, exceptions, suppliers, monitoring,
#: accuracy, dashboards, forecast quality.
router = APIRouter(include_in_schema=False)
router.include_router(_queue_router)
router.include_router(_views_router)
router.include_router(_item_router)
router.include_router(_whatif_router)
router.include_router(_exception_router, prefix="/ui")
router.include_router(_suppliers_router, prefix="/ui")
router.include_router(_dashboards_router)
router.include_router(_forecast_report_router, prefix="/ui")
