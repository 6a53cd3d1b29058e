"""Ray Serve deployments: the decision-API ingress and the optional batched model deployment.

``serve deploy configs/serve.yaml`` and ``replenish serve`` both build the application with :func:`build_app`.
Ray is imported only when an application is built, never at import time of this package.
"""

from __future__ import annotations

from typing import Any

from serving.deploy._config import (
    ApiDeploymentConfig,
    JobsDeploymentConfig,
    ModelDeploymentConfig,
    ServeAppConfig,
    load_serve_file,
)
from serving.deploy._local import free_port, run_app, shutdown, start_serve
from serving.deploy._predictors import UnitPredictor, mlflow_alias_version

__all__ = [
    "ApiDeploymentConfig",
    "JobsDeploymentConfig",
    "ModelDeploymentConfig",
    "ServeAppConfig",
    "build_app",
    "free_port",
    "load_serve_file",
    "mlflow_alias_version",
    "run_app",
    "shutdown",
    "start_serve",
    "UnitPredictor",
]


def build_app(args: dict[str, Any] | ServeAppConfig | None = None):
    """Bind the Serve application (see :func:`serving.deploy._app.build_app`)."""
    from serving.deploy._app import build_app as _build

    return _build(args)
