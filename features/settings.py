"""Typed service settings: defaults, then ``configs/*.yaml``, then ``REPLENISH_*`` environment variables.

All embedded state lives under ``home`` (``$REPLENISH_HOME``, default ``./.replenish``): the SQLite state
store, the Parquet fact store, the MLflow backend and artefacts, Ray's temp files. Deleting it removes a demo.

A wrong setting fails at start with the field, the value and what is allowed (:class:`ConfigError`).
Outside ``development``/``test`` unsafe defaults (the development webhook secret, an embedded SQLite store for
a multi-replica service) are refused.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings"]

DEV_SECRET = "dev-insecure-webhook-secret"
#: Shortest webhook signing secret accepted in production.
MIN_SECRET_CHARS = 32
DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent.parent / "configs" / "replenish.yaml"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the field, the value and what is allowed."""


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``REPLENISH_CONFIG`` (default ``configs/replenish.yaml``)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        super().__init__(settings_cls)
        self._path = path

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used instead
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = yaml.safe_load(self._path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self._path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self._path}: expected a mapping of setting: value at the top level")
        return data


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``REPLENISH_<FIELD>`` or in the YAML config file."""

    model_config = SettingsConfigDict(env_prefix="REPLENISH_", extra="forbid", validate_default=True)

    env: Literal["development", "test", "production"] = "development"
    home: Path = Field(default=Path(".replenish"), description="Folder holding all embedded state.")
    tenant: str = Field(default="demo", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Default tenant.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under home.")
    facts_dir: Path | None = Field(default=None, description="Parquet fact store root; default home/facts.")
    mlflow_tracking_uri: str | None = Field(default=None, description="Default SQLite backend under home.")
    mlflow_artifact_root: Path | None = Field(default=None, description="Default home/mlruns.")
    model_name: str = Field(default="replenish-tft", min_length=1)
    ray_address: str | None = Field(default=None, description="Ray cluster address; None starts a local Ray.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    webhook_secret: str = DEV_SECRET
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # -- security (docs/security.md) ----------------------------------------------------------------------
    four_eyes_above: float | None = Field(
        default=0.0, ge=0, allow_inf_nan=False,
        description="Above this value the decider must differ from the proposer (None: off).",
    )
    four_eyes_rules: dict[str, float | None] = Field(
        default_factory=dict, description="Per routing rule: its own four-eyes threshold (None: off)."
    )
    auto_approve_max_value: float = Field(
        default=10_000.0, ge=0, allow_inf_nan=False,
        description="Largest value a server-side routing rule may auto-approve; above it the item is routed.",
    )
    reason_codes: list[str] | None = Field(
        default=None, description="Override/reject reason codes; others answer 422 (None: any code)."
    )
    unknown_cost: Literal["refuse", "route"] = Field(
        default="route", description="An item without a stored unit cost: refuse it (422) or route to admins."
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=2**31, description="Larger bodies answer 413.")
    rate_limit_per_key: float = Field(default=50.0, gt=0, allow_inf_nan=False, description="Requests/s.")
    rate_burst_per_key: int = Field(default=100, ge=1)
    rate_limit_per_tenant: float = Field(default=200.0, gt=0, allow_inf_nan=False, description="Requests/s.")
    rate_burst_per_tenant: int = Field(default=400, ge=1)
    tenant_daily_quota: int | None = Field(default=None, ge=1, description="Requests per tenant per UTC day.")
    usage_flush_s: float = Field(default=5.0, gt=0, le=3600, description="How often usage is written.")
    metrics_cache_s: float = Field(default=10.0, ge=0, le=3600, description="/metrics answers from a cache.")
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_absolute_hours: int = Field(default=12, ge=1, le=24 * 30)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        """Order of precedence: explicit arguments, environment, YAML file, defaults."""
        path = os.environ.get("REPLENISH_CONFIG")
        yaml_path = Path(path) if path else DEFAULT_CONFIG_FILE
        if path and not yaml_path.exists():
            raise ConfigError(f"REPLENISH_CONFIG={path!r}: file not found")
        return (init_settings, env_settings, _YamlSource(settings_cls, yaml_path))

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_unsafe(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'state.db'}"
        if self.facts_dir is None:
            self.facts_dir = self.home / "facts"
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if self.mlflow_artifact_root is None:
            self.mlflow_artifact_root = self.home / "mlruns"
        if self.env == "production":
            if self.webhook_secret == DEV_SECRET:
                raise ValueError("webhook_secret: the development default is refused when env=production")
            if len(self.webhook_secret) < MIN_SECRET_CHARS:
                raise ValueError(f"webhook_secret: at least {MIN_SECRET_CHARS} characters in production")
            if self.database_url.startswith("sqlite"):
                raise ValueError("database_url: an embedded SQLite store is refused when env=production; "
                                 "give a postgresql+psycopg:// URL")
        return self

    def ensure_home(self) -> Path:
        """Create the home folder (and fact store root) if missing and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        assert self.facts_dir is not None
        self.facts_dir.mkdir(parents=True, exist_ok=True)
        return self.home


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        value = err.get("input")
        lines.append(f"  {field} = {value!r}: {err['msg']}")
    head = "invalid settings (REPLENISH_<FIELD> environment variables or the YAML config):\n"
    return head + "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, YAML, environment and ``overrides``.

    Raises:
        ConfigError: a field is invalid; the message names field, value and what is allowed.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


@functools.cache
def _cached(key: tuple) -> Settings:
    return load_settings()


def get_settings() -> Settings:
    """Settings for this process, re-read when any ``REPLENISH_*`` variable changes (tests set them)."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("REPLENISH_")))
    return _cached(key)
