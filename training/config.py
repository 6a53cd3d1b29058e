"""Typed training configuration: ``configs/train/*.yaml`` only feeds these pydantic models.

Unknown keys and bad values are rejected on construction with the field path named
(:class:`TrainConfigError`), before any data is read or any model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DataConfig",
    "ModelConfig",
    "FitConfig",
    "BacktestConfig",
    "TrainConfig",
    "TrainConfigError",
    "config_error",
    "load_train_config",
]


class TrainConfigError(ValueError):
    """A training config is invalid; the message names each bad field, its value and what is allowed."""


def config_error(exc: ValidationError, where: str = "(dict)") -> TrainConfigError:
    """The :class:`TrainConfigError` of a pydantic validation error, one line per bad field."""
    return TrainConfigError(_format(exc, where))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Which of the tenant's facts train the model and how the panel is cut.

    The data always comes from the fact store (``replenish ingest``); the grid is read from the sales dates
    unless ``freq`` (or the tenant profile) names it.
    """

    tenant: str | None = Field(default=None, description="Fact-store tenant (default: settings).")
    freq: Literal["D", "W", "MS"] | None = Field(
        default=None, description="Grid of the sales facts (None: read from the dates)."
    )
    max_series: int | None = Field(
        default=None, ge=1, description="Train on N series drawn at random (seeded; small or capped runs)."
    )
    lags: list[int] = Field(default=[], description="Seasonal target lags as known inputs (each >= horizon).")
    attributes: list[str] | None = Field(
        default=None,
        description="SKU/location attributes used as static categoricals (None: all the master data fills).",
    )


class ModelConfig(_Strict):
    """TFT hyper-parameters (pytorch-forecasting ``TemporalFusionTransformer``)."""

    hidden_size: int = Field(default=32, ge=4, le=512)
    attention_head_size: int = Field(default=4, ge=1, le=16)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    hidden_continuous_size: int = Field(default=16, ge=1, le=512)
    lstm_layers: int = Field(default=1, ge=1, le=4)
    quantiles: list[float] = Field(default=[0.1, 0.25, 0.5, 0.75, 0.9], min_length=3)

    @model_validator(mode="after")
    def _check_quantiles(self) -> ModelConfig:
        q = self.quantiles
        if any(not 0.0 < v < 1.0 for v in q) or sorted(q) != q or len(set(q)) != len(q):
            raise ValueError(f"quantiles must be strictly increasing levels in (0, 1), got {q}")
        if 0.5 not in q or 0.1 not in q or 0.9 not in q:
            raise ValueError(f"quantiles must include 0.1, 0.5 and 0.9 (P10..P90), got {q}")
        return self


class FitConfig(_Strict):
    """Windows, optimisation and early stopping."""

    encoder_length: int = Field(default=36, ge=2)
    min_encoder_length: int | None = Field(default=None, ge=2)
    horizon: int = Field(default=6, ge=1)
    season: int = Field(default=12, ge=1)
    batch_size: int = Field(default=64, ge=1)
    batches_per_epoch: int = Field(default=100, ge=1)
    max_epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=6, ge=1)
    learning_rate: float = Field(default=0.01, gt=0.0, le=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    gradient_clip_val: float = Field(default=0.1, gt=0.0)
    swa_epochs: int = Field(default=1, ge=1, description="Average the weights of the refit's last k epochs.")
    keep_early_model: bool = Field(
        default=False,
        description="Serve the mean of the refit and the early-stopped model (an ensemble of two).",
    )
    refit: bool = Field(
        default=True, description="Refit on train+validation with the epochs early stopping chose."
    )
    val_origins: int = Field(
        default=1,
        ge=1,
        description="Rolling validation origins (val_step apart, the last ending at the cut-off): early "
        "stopping, blend weights and conformal calibration pool them; training windows end before the first.",
    )
    val_step: int | None = Field(
        default=None, ge=1, description="Periods between validation origins (None: horizon)."
    )
    members: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Seed ensemble: members trained with seeds seed, seed+1000, ...; quantiles averaged.",
    )
    loss_scale: Literal["none", "series", "auto"] = Field(
        default="none",
        description="'none': pinball loss in target units (big series weigh most, like WAPE); 'series': each "
        "window's loss divided by its encoder's mean level (scale-free: every series weighs alike); 'auto': "
        "train the first member both ways and keep the one with the lower validation MAE.",
    )
    blend_with: list[Literal["last_value", "seasonal_naive", "auto_ets", "theta"]] = Field(
        default=["last_value", "seasonal_naive"],
        description="Baselines the served median may blend with (weights fit on the validation origins; "
        "auto_ets/theta are statsforecast fits at each forecast, slower on big panels).",
    )
    calibration_margin: float = Field(
        default=0.0,
        ge=0.0,
        le=0.2,
        description="Coverage added to each central band's nominal one when the quantiles are calibrated on "
        "the validation origins (lower and upper tails separately): 0.015 aims the P10..P90 band at 0.815.",
    )
    blend_shrink: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Share of equal weights mixed into the validation-optimal blend.",
    )
    seed: int = 42
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    threads: int | None = Field(
        default=None,
        ge=1,
        description="torch CPU threads (None: torch's default). Use 1 on a shared, oversubscribed machine.",
    )
    progress: bool = True
    workers: int = Field(
        default=1,
        ge=1,
        description="Ray Train workers: 1 trains in this process (the default); more train with DDP under "
        "ray.train.torch.TorchTrainer (gloo on CPU, NCCL on GPUs), batch_size split across them "
        "(training.ray_train).",
    )

    @model_validator(mode="after")
    def _check_lengths(self) -> FitConfig:
        if self.min_encoder_length is not None and self.min_encoder_length > self.encoder_length:
            raise ValueError(
                f"min_encoder_length ({self.min_encoder_length}) must not exceed "
                f"encoder_length ({self.encoder_length})"
            )
        return self


class BacktestConfig(_Strict):
    """Rolling-origin backtest settings.

    ``origins`` forecast origins, ``step`` periods apart, the last one ending at the last observed period.
    """

    origins: int = Field(default=3, ge=1)
    step: int = Field(default=6, ge=1)


class TrainConfig(_Strict):
    """A whole training run: data, model, fitting, backtest and the registry name."""

    name: str = Field(default="replenish-tft", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    fit: FitConfig = FitConfig()
    backtest: BacktestConfig = BacktestConfig()
    holdout: int = Field(default=6, ge=0, description="Final periods never seen by training (test window).")
    tracking_uri: str | None = Field(
        default=None, description="MLflow URI; default SQLite under REPLENISH_HOME."
    )

    @model_validator(mode="after")
    def _check_windows(self) -> TrainConfig:
        H = self.fit.horizon
        if self.holdout < H:
            raise ValueError(
                f"holdout = {self.holdout} is shorter than fit.horizon = {H}: the backtest forecasts {H} "
                f"periods from origins inside the holdout; set holdout >= {H}"
            )
        short = [k for k in self.data.lags if k < H]
        if short:
            raise ValueError(
                f"data.lags = {self.data.lags}: lags {short} are shorter than fit.horizon = {H}; each lag "
                f"must be >= {H} to be known over the whole horizon"
            )
        return self


def _format(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if not loc:  # a rule across fields: its message names them
            lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
            continue
        lines.append(f"  {loc} = {err.get('input')!r}: {err['msg']}")
    return f"invalid training config {where}:\n" + "\n".join(lines)


def load_train_config(source: str | Path | dict) -> TrainConfig:
    """Build a :class:`TrainConfig` from a YAML file path or a dict.

    Raises:
        TrainConfigError: the file is missing or not a mapping, or a field is invalid (named in the message).
    """
    where = "(dict)"
    if not isinstance(source, dict):
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise TrainConfigError(f"training config {path}: file not found")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise TrainConfigError(f"training config {path}: expected a mapping at the top level")
        source = data
    try:
        return TrainConfig(**source)
    except ValidationError as exc:
        raise TrainConfigError(_format(exc, where)) from None
