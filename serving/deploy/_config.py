"""Typed configuration of the Serve application (the ``args`` block of ``configs/serve*.yaml``).

``configs/serve.yaml`` is a Ray Serve config file: ``serve deploy configs/serve.yaml`` hands its ``args`` to
:func:`serving.deploy.build_app` on the cluster, and ``replenish serve`` reads the same file locally. The
``args`` are validated here, on construction, so a wrong value stops the deployment with the field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "ApiDeploymentConfig",
    "JobsDeploymentConfig",
    "ModelDeploymentConfig",
    "ServeAppConfig",
    "ServeFile",
    "load_serve_file",
]


class _Replicas(BaseModel):
    """Replica count, autoscaling, queue limits and resources shared by both deployments."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int | Literal["auto"] = Field(default=1, description="Fixed replica count, or 'auto'.")
    autoscaling_config: dict[str, Any] | None = Field(
        default=None,
        description="Ray Serve autoscaling_config (min_replicas, max_replicas, "
        "target_ongoing_requests, ...); needs num_replicas 'auto' or unset.",
    )
    max_ongoing_requests: int = Field(default=64, ge=1, description="Requests in flight per replica.")
    max_queued_requests: int = Field(
        default=256,
        ge=-1,
        description="Requests queued per caller before "
        "back-pressure (503/429 with Retry-After); -1 means unbounded.",
    )
    ray_actor_options: dict[str, Any] = Field(
        default_factory=lambda: {"num_cpus": 0.5}, description="num_cpus, num_gpus, memory, runtime_env."
    )
    graceful_shutdown_timeout_s: float = Field(
        default=5.0, ge=0.0, description="How long a stopping replica may drain its in-flight requests."
    )
    logging_config: dict[str, Any] = Field(
        default_factory=lambda: {"log_level": "WARNING", "enable_access_log": False},
        description="Ray Serve logging_config; per-request access logs cost throughput on small machines.",
    )

    @model_validator(mode="after")
    def _autoscaling_or_fixed(self):
        if self.autoscaling_config is not None and self.num_replicas != "auto":
            self.num_replicas = "auto"
        if self.max_queued_requests == 0:
            raise ValueError("max_queued_requests: 0 would refuse every request; use -1 (unbounded) or >= 1")
        return self

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options``."""
        opts: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "ray_actor_options": dict(self.ray_actor_options),
            "logging_config": dict(self.logging_config),
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
        }
        if self.autoscaling_config is not None:
            opts["autoscaling_config"] = dict(self.autoscaling_config)
        else:
            opts["num_replicas"] = self.num_replicas
        return opts


class ModelDeploymentConfig(_Replicas):
    """The batched model deployment.

    Attributes:
        loader: import path ``module:function`` returning a predictor (required); called as
            ``loader(**loader_kwargs, version=v)`` when a resolver is set, else ``loader(**loader_kwargs)``.
        resolver: import path of ``f(**resolver_kwargs) -> version`` naming the version to serve (the
        alias's);
            ``None`` serves what the loader returns and never swaps.
        watch_interval_s: how often a replica asks the resolver whether the alias moved; 0 disables.
        max_batch_size: most planning units in one forward pass (requests are counted by their units).
        batch_wait_timeout_s: longest a request waits for others to fill a batch.
        max_concurrent_batches: batches in flight at once per replica.
        torch_threads: intra-op threads for torch in the replica; ``None`` leaves torch's default.
        warmup_units: units forecast in the constructor so no user request pays the first-call cost.
    """

    loader: str
    loader_kwargs: dict[str, Any] = Field(default_factory=dict)
    resolver: str | None = None
    resolver_kwargs: dict[str, Any] = Field(default_factory=dict)
    watch_interval_s: float = Field(default=10.0, ge=0.0)
    max_batch_size: int = Field(default=64, ge=1)
    batch_wait_timeout_s: float = Field(default=0.05, ge=0.0, le=10.0)
    max_concurrent_batches: int = Field(default=1, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    warmup_units: int = Field(default=8, ge=0)
    max_ongoing_requests: int = Field(default=256, ge=1)
    max_queued_requests: int = Field(default=1024, ge=-1)

    def user_config(self) -> dict[str, Any]:
        """The part a running replica can change without a restart (``reconfigure``)."""
        return {
            "max_batch_size": self.max_batch_size,
            "batch_wait_timeout_s": self.batch_wait_timeout_s,
            "watch_interval_s": self.watch_interval_s,
        }


class ApiDeploymentConfig(_Replicas):
    """The ingress deployment running the FastAPI decision API.

    Forecasts, risk and what-if answer each caller's tenant from its stored forecasts and plan inputs, cached
    in each ingress replica (:class:`serving.api.routes.forecasts.ForecastStore`); nothing tenant-specific
    is configured here.

    Attributes:
        settings: overrides of :class:`features.settings.Settings` inside the replicas (e.g. ``home``).
        forecast_check_interval_s: most seconds between two checks of a tenant's stored forecasts for a newer
            run or newer sales (a stale forecast is refused once a check has seen the newer sales).
        backpressure_status: HTTP status of a request refused because the queue is full (503 or 429).
        retry_after_s: value of the ``Retry-After`` header on such refusals.
    """

    settings: dict[str, Any] = Field(default_factory=dict)
    forecast_check_interval_s: float = Field(default=2.0, ge=0.0, le=300.0)
    backpressure_status: Literal[429, 503] = 503
    retry_after_s: int = Field(default=1, ge=0)

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options``, with the back-pressure response."""
        opts = super().deployment_options()
        opts["backpressure_config"] = {
            "status_code": self.backpressure_status,
            "retry_after_s": self.retry_after_s,
        }
        return opts


class JobsDeploymentConfig(_Replicas):
    """The ``Jobs`` deployment: scheduled jobs (dispatch, expiry, monitoring, escalation, cycles per tenant).

    Replicas are leader-elected in the state store; one runs the jobs, each at most once per window, and the
    others take over when it stops (see :mod:`workflow.jobs`). Two replicas give high availability.

    Attributes:
        settings: overrides of :class:`features.settings.Settings` inside the replicas.
        intervals_s: seconds between runs of each service-wide job (``dispatch``, ``expire``, ``monitoring``,
            ``escalate``); a job left out runs at its default interval, one set to 0 does not run.
        cycle_interval_s: ``tenant -> seconds`` between scheduled cycles of that tenant (none by default).
        lease_s: how long the leader's lease lasts unrenewed (the longest a dead leader goes unreplaced).
        tick_s: how often a replica renews its lease and looks for due jobs.
        retain_days: job runs kept this long.
    """

    num_replicas: int | Literal["auto"] = Field(default=1, description="Replicas (leader-elected).")
    ray_actor_options: dict[str, Any] = Field(default_factory=lambda: {"num_cpus": 0.25})
    settings: dict[str, Any] = Field(default_factory=dict)
    intervals_s: dict[str, float] = Field(default_factory=dict)
    cycle_interval_s: dict[str, float] = Field(default_factory=dict)
    lease_s: float = Field(default=30.0, gt=0)
    tick_s: float = Field(default=1.0, gt=0)
    retain_days: float = Field(default=7.0, gt=0)

    @model_validator(mode="after")
    def _jobs_known(self):
        from serving.jobs import DEFAULT_INTERVALS_S

        unknown = sorted(set(self.intervals_s) - set(DEFAULT_INTERVALS_S))
        if unknown:
            raise ValueError(
                f"intervals_s: unknown job(s) {unknown}; expected some of {sorted(DEFAULT_INTERVALS_S)}"
            )
        bad = {k: v for k, v in {**self.intervals_s, **self.cycle_interval_s}.items() if v != 0 and v < 1}
        if bad:
            raise ValueError(f"intervals: {bad}: expected 0 (off) or at least 1 second")
        if self.lease_s <= 3 * self.tick_s:
            raise ValueError(f"lease_s={self.lease_s} must exceed 3 * tick_s={self.tick_s}")
        return self

    def scheduler_config(self) -> dict[str, Any]:
        """What a ``Jobs`` replica's constructor takes."""
        from serving.jobs import DEFAULT_INTERVALS_S

        return {
            "settings": dict(self.settings),
            "intervals_s": {**DEFAULT_INTERVALS_S, **self.intervals_s},
            "cycle_interval_s": dict(self.cycle_interval_s),
            "lease_s": self.lease_s,
            "tick_s": self.tick_s,
            "retain_days": self.retain_days,
        }


class ServeAppConfig(BaseModel):
    """Everything :func:`serving.deploy.build_app` needs: the API ingress and, optionally, a model deployment.

    Attributes:
        model: the batched model deployment for on-the-fly forecasts of a loader's predictor (reached through
            its handle, ``app.state.forecaster``); ``None`` (the default) deploys none: the forecast routes
            answer from stored forecasts and need no model in the serving process.
        api: the ingress.
        jobs: the scheduled jobs' deployment (:class:`JobsDeploymentConfig`); ``None`` (the default when the
            section is absent) runs no jobs in this application.
    """

    model_config = ConfigDict(extra="forbid")

    model: ModelDeploymentConfig | None = None
    api: ApiDeploymentConfig = Field(default_factory=ApiDeploymentConfig)
    jobs: JobsDeploymentConfig | None = None

    @classmethod
    def parse(cls, args: dict[str, Any] | ServeAppConfig | None) -> ServeAppConfig:
        """Validate ``args``; errors name the field path (``model.max_batch_size``) and the value."""
        if isinstance(args, ServeAppConfig):
            return args
        try:
            return cls.model_validate(args or {})
        except ValidationError as exc:
            lines = [
                f"  {'.'.join(str(p) for p in e['loc'])} = {e.get('input')!r}: {e['msg']}"
                for e in exc.errors()
            ]
            raise ValueError("invalid serve application args:\n" + "\n".join(lines)) from None


class ServeFile(BaseModel):
    """The parts of a Ray Serve config file that ``replenish serve`` uses."""

    model_config = ConfigDict(extra="allow")

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    app_name: str = "replenish"
    route_prefix: str = "/"
    import_path: str = "serving.deploy:build_app"
    args: ServeAppConfig = Field(default_factory=ServeAppConfig)


def load_serve_file(path: str | Path, app_name: str | None = None) -> ServeFile:
    """Read a Serve config file and validate its application's ``args``.

    Args:
        path: YAML file in Ray Serve's format (``http_options`` + ``applications``).
        app_name: application to pick; default the first one.

    Raises:
        ValueError: the file is missing, not YAML, has no such application, or its args are invalid.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: serve config file not found")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    apps = doc.get("applications") or []
    if not apps:
        raise ValueError(f"{path}: expected an 'applications' list with one application")
    chosen = apps[0] if app_name is None else next((a for a in apps if a.get("name") == app_name), None)
    if chosen is None:
        raise ValueError(f"{path}: no application named {app_name!r} (have {[a.get('name') for a in apps]})")
    http = doc.get("http_options") or {}
    try:
        args = ServeAppConfig.parse(chosen.get("args"))
    except ValueError as exc:
        raise ValueError(f"{path}: application {chosen.get('name')!r}: {exc}") from None
    return ServeFile(
        http_host=http.get("host", "127.0.0.1"),
        http_port=int(http.get("port", 8000)),
        app_name=chosen.get("name", "replenish"),
        route_prefix=chosen.get("route_prefix", "/"),
        import_path=chosen.get("import_path", "serving.deploy:build_app"),
        args=args,
    )
