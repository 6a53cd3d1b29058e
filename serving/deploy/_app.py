"""The Serve application builder named by ``configs/serve*.yaml`` (``serving.deploy:build_app``)."""

from __future__ import annotations

from typing import Any

from serving.deploy._config import ServeAppConfig

__all__ = ["build_app"]


def build_app(args: dict[str, Any] | ServeAppConfig | None = None):
    """Bind the API ingress (with the model and the jobs deployments, when configured) with their options.

    Args:
        args: the application's ``args`` from a Serve config file (validated into :class:`ServeAppConfig`).

    Returns:
        ray.serve.Application: the ingress, bound to the model deployment if any, ready for ``serve.run``.
    """
    from serving.deploy._ingress import DecisionAPI

    cfg = ServeAppConfig.parse(args)
    model = None
    if cfg.model is not None:
        from serving.deploy._model import ForecastModel

        # Batch size, batch wait and watch interval travel as user_config: changing them in the config file
        # (or redeploying with new args) reconfigures running replicas without restarting them.
        model = ForecastModel.options(
            **cfg.model.deployment_options(), user_config=cfg.model.user_config()
        ).bind(cfg.model.model_dump(exclude=set(cfg.model.user_config())))
    jobs = None
    if cfg.jobs is not None:
        from serving.deploy._jobs import Jobs

        jobs = Jobs.options(**cfg.jobs.deployment_options()).bind(cfg.jobs.scheduler_config())
    api = DecisionAPI.options(**cfg.api.deployment_options())
    return api.bind(
        model, cfg.api.settings, float(cfg.api.retry_after_s or 1), cfg.api.forecast_check_interval_s, jobs
    )
