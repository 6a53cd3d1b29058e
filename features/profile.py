"""A tenant's cycle settings, remembered in the state store so that commands need no repeated flags.

The profile says which registered model serves the tenant, which grid and horizon its forecasts use (both
read from the data when not set), the training settings that override the defaults, the hierarchy levels
to reconcile over and the reconciliation method. Commands that train or forecast update it (``replenish train
--tenant T -c FILE`` remembers the file's settings), and every later command reads it.

Example::

    from features.profile import get_profile, update_profile
    update_profile(engine, "acme", horizon=18, train={"fit": {"max_epochs": 5}})
    get_profile(engine, "acme").horizon        # 18
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import JSON, DateTime, String, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from features.store import Base, session_scope, utcnow

__all__ = [
    "ProfileError",
    "TenantProfile",
    "TenantProfileRow",
    "get_profile",
    "model_name_for",
    "save_profile",
    "update_profile",
]

_NAME = r"^[A-Za-z0-9_.-]{1,100}$"


class ProfileError(ValueError):
    """A profile setting is invalid; the message names the field, the value and what is allowed."""


class TenantProfile(BaseModel):
    """What the cycle needs to know about a tenant beyond its data.

    Attributes:
        model_name: registered model serving the tenant (default ``<tenant>-tft``, :func:`model_name_for`).
        freq: grid of the tenant's periods (``D``, ``W``, ``MS``); None: read from the sales dates.
        horizon: periods to forecast; None: the largest ``planning_units.horizon_periods``, capped by the
            grid's default.
        train: overrides of the training config's fields (nested like ``training.config.TrainConfig``;
            validated by training).
        hierarchy: reconciliation levels, each a list of SKU/location attribute columns (``[]`` is the
            total); empty: a default from the attributes the master data has.
        reconcile_method: reconciliation method; None: ``wls_var`` where backtest residuals exist, else
            ``wls_struct``.
        routing: routing rules file for planning; None: the project's ``configs/routing.yaml``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str | None = Field(default=None, pattern=_NAME)
    freq: Literal["D", "W", "MS"] | None = None
    horizon: int | None = Field(default=None, ge=1, le=1000)
    train: dict[str, Any] = Field(default_factory=dict)
    hierarchy: list[list[str]] = Field(default_factory=list)
    reconcile_method: str | None = Field(default=None, max_length=32)
    routing: str | None = Field(default=None, max_length=1000)

    @field_validator("hierarchy")
    @classmethod
    def _levels(cls, v: list[list[str]]) -> list[list[str]]:
        seen = set()
        for level in v:
            key = tuple(level)
            if key in seen:
                raise ValueError(f"level {level} is listed twice")
            seen.add(key)
            for col in level:
                if not col or len(col) > 64:
                    raise ValueError(f"level {level}: column names are 1-64 characters")
        return v


class TenantProfileRow(Base):
    """One stored profile per tenant (the :class:`TenantProfile` as JSON)."""

    __tablename__ = "tenant_profiles"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


def model_name_for(tenant: str, profile: TenantProfile | None = None) -> str:
    """The registered model name of ``tenant``: the profile's, else ``<tenant>-tft``."""
    if profile is not None and profile.model_name:
        return profile.model_name
    return f"{tenant}-tft"


def _build(data: dict[str, Any]) -> TenantProfile:
    try:
        return TenantProfile(**data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or 'profile'} = {e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ProfileError("invalid tenant profile:\n" + "\n".join(lines)) from None


def get_profile(engine: Engine, tenant: str) -> TenantProfile:
    """The stored profile of ``tenant``, or the default one when none is stored."""
    with session_scope(engine) as s:
        row = s.execute(
            select(TenantProfileRow).where(TenantProfileRow.tenant_id == tenant)
        ).scalar_one_or_none()
        return _build(dict(row.document)) if row is not None else TenantProfile()


def save_profile(engine: Engine, tenant: str, profile: TenantProfile) -> None:
    """Store ``profile`` for ``tenant`` (replacing the earlier one), in one transaction."""
    doc = profile.model_dump(mode="json")
    with session_scope(engine) as s:
        row = s.get(TenantProfileRow, tenant)
        if row is None:
            s.add(TenantProfileRow(tenant_id=tenant, document=doc))
        else:
            row.document = doc


def update_profile(engine: Engine, tenant: str, **changes: Any) -> TenantProfile:
    """Change some fields of the tenant's profile and store it; ``train`` dicts are merged, not replaced.

    Raises:
        ProfileError: a changed field is invalid (nothing is stored then).
    """
    current = get_profile(engine, tenant).model_dump()
    if "train" in changes and changes["train"] is not None:
        changes["train"] = _merge(current.get("train") or {}, changes["train"])
    profile = _build({**current, **changes})
    save_profile(engine, tenant, profile)
    return profile


def _merge(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
