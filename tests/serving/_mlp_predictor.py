"""A small real torch stand-in model for the optional model deployment: lagged history -> monotone quantiles.

Not a forecasting model of the product (tenants' forecasts come from the cycle's forecast stage): it gives the
model deployment something real to batch, swap and load from a real MLflow registry as a config plus a
``state_dict`` (no pickles). The Serve tests and ``benchmarks/serving.py`` / ``benchmarks/gpu_serving.py``
name its loaders in their configs (``tests.serving._mlp_predictor:make_mlp_predictor``,
``tests.serving._mlp_predictor:load_mlflow_mlp``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from serving.deploy import UnitPredictor

__all__ = [
    "DEFAULT_QUANTILES",
    "MLPSpec",
    "QuantileMLP",
    "TorchQuantilePredictor",
    "load_mlflow_mlp",
    "log_mlp_version",
    "make_mlp_predictor",
    "synthetic_histories",
]

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class MLPSpec:
    """Shape of a :class:`QuantileMLP` and of the synthetic unit histories it is served with.

    Attributes:
        n_units: number of planning units whose histories the predictor holds.
        lookback: history length ``L`` fed to the network.
        horizon: forecast length ``H``.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        quantiles: quantile levels, ascending.
        data_seed: seed of the synthetic histories (so a version is a config plus a state_dict only).
    """

    n_units: int = 350
    lookback: int = 36
    horizon: int = 6
    hidden: int = 64
    depth: int = 2
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    data_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_units", "lookback", "horizon", "hidden", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"MLPSpec.{name}: expected a positive integer, got {getattr(self, name)!r}")
        q = tuple(float(x) for x in self.quantiles)
        if not q or any(not 0.0 < x < 1.0 for x in q) or list(q) != sorted(set(q)):
            raise ValueError(f"MLPSpec.quantiles: expected strictly ascending levels in (0, 1), got {q!r}")
        object.__setattr__(self, "quantiles", q)


def _torch():
    import torch

    return torch


def QuantileMLP(spec: MLPSpec, seed: int):  # noqa: N802 - a factory standing for the nn.Module class
    """Build the network for ``spec`` with weights drawn from ``seed``.

    The network maps a scaled history ``x`` of shape ``(n, L)`` to ``(n, H, Q)``: a median path plus
    non-negative gaps (softplus) accumulated outwards, so quantiles never cross.

    Returns:
        torch.nn.Module: the model in eval mode.
    """
    torch = _torch()
    nn = torch.nn
    n_q = len(spec.quantiles)
    mid = int(np.argmin([abs(q - 0.5) for q in spec.quantiles]))

    class _QuantileMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = spec.lookback
            for _ in range(spec.depth):
                layers += [nn.Linear(width, spec.hidden), nn.GELU()]
                width = spec.hidden
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width, spec.horizon * n_q)

        def forward(self, x):  # x: (n, L)
            z = self.head(self.body(x)).view(-1, spec.horizon, n_q)
            centre = z[..., mid : mid + 1] + x[:, -1:, None]  # (n, H, 1): a residual on the last value
            gaps = torch.nn.functional.softplus(z)  # (n, H, Q) >= 0
            lower = centre - torch.flip(torch.cumsum(torch.flip(gaps[..., :mid], [-1]), -1), [-1])
            upper = centre + torch.cumsum(gaps[..., mid + 1 :], -1)
            return torch.cat([lower, centre, upper], dim=-1)

    gen = torch.Generator().manual_seed(int(seed))
    model = _QuantileMLP()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(p.shape[-1], 1)) ** 0.5)
    return model.eval()


def synthetic_histories(spec: MLPSpec) -> tuple[list[str], np.ndarray]:
    """Seasonal demand histories for ``spec.n_units`` units: ids ``u00000``.. and values ``(N, L)``."""
    rng = np.random.default_rng(spec.data_seed)
    t = np.arange(spec.lookback)
    level = rng.gamma(2.0, 50.0, size=(spec.n_units, 1))
    season = 1.0 + 0.3 * np.sin(2 * np.pi * (t[None, :] + rng.integers(0, 12, (spec.n_units, 1))) / 12)
    y = rng.poisson(level * season).astype(np.float32)
    return [f"u{i:05d}" for i in range(spec.n_units)], y


class TorchQuantilePredictor:
    """Serves a torch quantile model over prepared, scaled histories held as one tensor.

    Args:
        model: ``torch.nn.Module`` mapping ``(n, L)`` scaled histories to ``(n, H, Q)``.
        unit_ids: ids of the ``N`` units, in row order of ``history``.
        history: demand histories, shape ``(N, L)``.
        quantiles: quantile levels of the model's last axis.
        horizon: forecast length ``H``.
        version: version id reported with every forecast.
        device: torch device of the model and the histories (``cpu``, ``cuda``; ``auto``: CUDA when visible).
    """

    def __init__(
        self,
        model,
        unit_ids: Sequence[str],
        history: np.ndarray,
        quantiles: Sequence[float],
        horizon: int,
        version: str,
        device: str = "cpu",
    ) -> None:
        torch = _torch()
        history = np.asarray(history, dtype=np.float32)
        if history.ndim != 2 or history.shape[0] != len(unit_ids):
            raise ValueError(
                f"history: expected shape (len(unit_ids)={len(unit_ids)}, L), got {history.shape}"
            )
        self.device = _device(device)
        self.model = model.eval().to(self.device)
        self.version = str(version)
        self.quantiles = tuple(float(q) for q in quantiles)
        self.horizon = int(horizon)
        self._row = {u: i for i, u in enumerate(unit_ids)}
        scale = np.maximum(history.mean(axis=1, keepdims=True), 1.0)  # (N, 1)
        self._x = torch.from_numpy(history / scale).to(self.device)  # (N, L)
        self._scale = scale.astype(np.float32)  # (N, 1)

    def has_unit(self, unit_id: str) -> bool:
        """Whether ``unit_id`` is one of the units this predictor holds."""
        return unit_id in self._row

    def unit_ids(self) -> list[str]:
        """Ids of the units this predictor holds, in row order."""
        return list(self._row)

    def predict(self, unit_ids: Sequence[str]) -> np.ndarray:
        """Quantile forecasts of shape ``(n, H, Q)`` in demand units, clipped at zero."""
        torch = _torch()
        try:
            rows = [self._row[u] for u in unit_ids]
        except KeyError as exc:
            raise KeyError(f"unknown planning unit {exc.args[0]!r}") from None
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            y = self.model(self._x.index_select(0, idx)).cpu().numpy()  # (n, H, Q)
        return np.maximum(y * self._scale[rows][:, :, None], 0.0)


def make_mlp_predictor(
    spec: MLPSpec | dict | None = None, seed: int = 0, version: str = "local", device: str = "cpu"
) -> UnitPredictor:
    """A :class:`TorchQuantilePredictor` over a freshly built :class:`QuantileMLP` (a loader for configs).

    Args:
        spec: network and data shape (a dict is validated into :class:`MLPSpec`).
        seed: weight seed.
        version: version id reported with the forecasts.
        device: torch device (``cpu``, ``cuda``, ``auto``).
    """
    spec = MLPSpec(**spec) if isinstance(spec, dict) else (spec or MLPSpec())
    ids, history = synthetic_histories(spec)
    return TorchQuantilePredictor(
        QuantileMLP(spec, seed), ids, history, spec.quantiles, spec.horizon, version, device=device
    )


def _device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is visible (a GPU replica), else ``cpu``."""
    if device != "auto":
        return device
    return "cuda" if _torch().cuda.is_available() else "cpu"


def _mlflow_client(tracking_uri: str | None):
    from training.registry import client

    return client(tracking_uri)


def log_mlp_version(
    spec: MLPSpec,
    seed: int,
    model_name: str,
    tracking_uri: str,
    artifact_root: str | Path,
    alias: str | None = None,
) -> str:
    """Log a :class:`QuantileMLP` as config + state_dict to MLflow, register it, optionally set ``alias``.

    Returns:
        The new registry version.
    """
    import tempfile

    torch = _torch()
    client = _mlflow_client(tracking_uri)
    exp_name = f"{model_name}-serving"
    exp = client.get_experiment_by_name(exp_name)
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment(exp_name, artifact_location=Path(artifact_root).resolve().as_uri())
    )
    run = client.create_run(exp_id)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"spec": asdict(spec), "seed": int(seed)}
        (Path(tmp) / "predictor.json").write_text(json.dumps(cfg))
        torch.save(QuantileMLP(spec, seed).state_dict(), Path(tmp) / "state_dict.pt")
        client.log_artifacts(run.info.run_id, tmp, artifact_path="predictor")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(model_name)
    except Exception:  # noqa: BLE001 - MlflowException RESOURCE_ALREADY_EXISTS: registered before
        pass
    mv = client.create_model_version(
        model_name, source=f"{run.info.artifact_uri}/predictor", run_id=run.info.run_id
    )
    if alias:
        client.set_registered_model_alias(model_name, alias, mv.version)
    return str(mv.version)


def load_mlflow_mlp(version: str, model_name: str, tracking_uri: str | None = None) -> UnitPredictor:
    """Load a :class:`QuantileMLP` version logged by :func:`log_mlp_version` (a loader for configs)."""
    from mlflow.artifacts import download_artifacts

    torch = _torch()
    client = _mlflow_client(tracking_uri)
    mv = client.get_model_version(model_name, str(version))
    local = Path(download_artifacts(artifact_uri=mv.source))
    cfg = json.loads((local / "predictor.json").read_text())
    spec_d = cfg["spec"]
    spec_d["quantiles"] = tuple(spec_d["quantiles"])
    spec = MLPSpec(**spec_d)
    model = QuantileMLP(spec, seed=0)
    model.load_state_dict(torch.load(local / "state_dict.pt", weights_only=True))
    ids, history = synthetic_histories(spec)
    return TorchQuantilePredictor(model.eval(), ids, history, spec.quantiles, spec.horizon, str(version))
