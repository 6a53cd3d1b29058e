"""Accuracy per level of the hierarchy, for the served forecast and every candidate, on backtest windows.

:func:`level_report` is the one pure computation: given actuals and quantile forecasts of the bottom-level
series at some origins and the series' keys, it sums series up each level (the total, each key column, the
series themselves) and returns, per model and level, MAE, WAPE, MASE (seasonal naive scale of the
aggregated history before the first origin), mean pinball loss over the quantile levels, and P10..P90
coverage. Aggregate quantiles are the sums of the bottom-level quantiles: a bottom-up reconciled forecast
that treats the series as comonotone (the widest coherent band), so the aggregate coverage figures read as
an upper bound. The figures are the ``after`` (bottom-up, coherent) view; ``before`` holds the figures of
forecasts made at each aggregate level directly where the caller passes them (``base``; the gate passes the
statsforecast models fitted on every aggregate's own history).

:func:`log_level_report` logs the report to an MLflow run: metrics ``level.<model>.<level>.<metric>``,
``levels.json`` and a plot (``levels.png`` with matplotlib, else ``levels.svg`` written here).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "REPORT_ARTIFACT",
    "aggregate",
    "champion_level_report",
    "level_groups",
    "level_report",
    "log_level_report",
    "svg_bars",
]

METRICS = ("mae", "wape", "mase", "pinball", "coverage_p10_p90")
REPORT_ARTIFACT = "levels.json"
#: Version tags shown beside the report (``training.served.gate_version`` and the gate set them).
REPORT_TAGS = ("served", "best_baseline", "selection_origin", "backtest_origins", "gate_decision",
               "gate_reason", "freq")


def level_groups(keys: pd.DataFrame) -> dict[str, np.ndarray]:
    """Group index per series for each level: ``total``, each key column, ``series``."""
    out = {"total": np.zeros(len(keys), dtype=np.int64)}
    for c in keys.columns:
        out[str(c)] = pd.factorize(keys[c].astype(str))[0]
    out["series"] = np.arange(len(keys))
    return out


def aggregate(a: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """Sum ``a`` over series (``axis``) into groups ``g``; a group is NaN where all its members are."""
    G = int(g.max()) + 1 if len(g) else 0
    moved = np.moveaxis(a, axis, 0)
    out = np.zeros((G, *moved.shape[1:]))
    np.add.at(out, g, np.nan_to_num(moved))
    seen = np.zeros((G, *moved.shape[1:]), dtype=bool)
    np.logical_or.at(seen, g, ~np.isnan(moved))
    out[~seen] = np.nan
    return np.moveaxis(out, 0, axis)


def _figures(A: np.ndarray, F: np.ndarray, y_train: np.ndarray, q: np.ndarray, season: int) -> dict:
    """Figures of actuals (O, G, H) and quantiles (O, G, H, Q) with history (G, T)."""
    from training.metrics import coverage, mae, mase, pinball, wape

    mid = int(np.argmin(np.abs(q - 0.5)))
    lo, hi = int(np.argmin(np.abs(q - 0.1))), int(np.argmin(np.abs(q - 0.9)))
    p50 = F[..., mid]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.concatenate([mase(A[o], p50[o], y_train, season) for o in range(A.shape[0])])
        return {
            "mae": mae(A, p50),
            "wape": wape(A, p50),
            "mase": float(np.nanmean(m)) if np.isfinite(m).any() else float("nan"),
            "pinball": pinball(A, F, q),
            "coverage_p10_p90": coverage(A, F[..., lo], F[..., hi]),
        }


def level_report(
    actuals: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    keys: pd.DataFrame,
    levels: Sequence[float],
    season: int,
    base: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> dict:
    """Figures per model and hierarchy level (module docstring).

    Args:
        actuals: (O, N, H) bottom-level actuals at O origins (``NaN`` = unobserved).
        forecasts: ``{model: (O, N, H, Q)}`` bottom-level quantiles.
        y_train: (N, T) history before the first origin (MASE scale).
        keys: (N, K) key columns of the series, top of the hierarchy first.
        levels: (Q,) quantile levels (0.1, 0.5 and 0.9 among them, or the nearest are used).
        season: seasonal lag of the MASE scale.
        base: optional ``{model: {level: (O, G, H, Q)}}`` forecasts made directly at an aggregate level
            (before reconciliation), reported under ``before``.

    Returns:
        ``{"levels": [...], "after": {model: {level: {metric: value}}}, "before": {...}}``.
    """
    A = np.asarray(actuals, dtype=np.float64)
    q = np.asarray(levels, dtype=np.float64)
    if A.ndim != 3 or len(keys) != A.shape[1]:
        raise ValueError(f"actuals {A.shape} and {len(keys)} key rows: expected (O, N, H) with N key rows")
    groups = level_groups(keys)
    after: dict[str, dict] = {}
    before: dict[str, dict] = {}
    for name, F in forecasts.items():
        F = np.asarray(F, dtype=np.float64)
        if F.shape[:3] != A.shape:
            raise ValueError(f"{name!r} forecasts {F.shape}: expected {A.shape} + (Q,)")
        after[name] = {}
        for lvl, g in groups.items():
            Ag, Fg, hist = aggregate(A, g, 1), aggregate(F, g, 1), aggregate(np.asarray(y_train, float), g, 0)
            after[name][lvl] = _figures(Ag, np.sort(Fg, axis=-1), hist, q, season)
            if base and lvl in (base.get(name) or {}):
                before.setdefault(name, {})[lvl] = _figures(Ag, np.asarray(base[name][lvl]), hist, q, season)
    return {"levels": list(groups), "after": after, "before": before}


def svg_bars(report: dict, metric: str = "wape", width: int = 720, row: int = 16) -> str:
    """A plain SVG bar chart of ``metric`` per level and model (the plot when matplotlib is absent)."""
    rows = [(lvl, m, v[lvl][metric]) for m, v in report["after"].items() for lvl in report["levels"]]
    top = max([r[2] for r in rows if np.isfinite(r[2])] or [1.0]) or 1.0
    h = row * (len(rows) + 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-size="11">',
             f'<text x="4" y="12">{metric} per level (after reconciliation)</text>']
    for i, (lvl, m, v) in enumerate(rows):
        y = row * (i + 1) + 4
        w = 0 if not np.isfinite(v) else int((width - 260) * v / top)
        parts.append(f'<text x="4" y="{y + 11}">{lvl} / {m}</text>')
        parts.append(f'<rect x="200" y="{y}" width="{w}" height="{row - 4}" fill="#4472c4"/>')
        parts.append(f'<text x="{204 + w}" y="{y + 11}">{v:.3f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def log_level_report(client, run_id: str, report: dict) -> None:
    """Log ``report`` to the MLflow run: metrics, ``levels.json`` and a WAPE-per-level plot."""
    metrics = {}
    for part in ("after", "before"):
        for model, per in report.get(part, {}).items():
            for lvl, figs in per.items():
                for k, v in figs.items():
                    if v is not None and np.isfinite(v):
                        suffix = "" if part == "after" else ".before"
                        metrics[f"level.{model}.{lvl}.{k}{suffix}"] = float(v)
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, v, now, 0) for k, v in metrics.items()]
    for i in range(0, len(items), 500):  # MLflow takes at most 1,000 metrics per batch
        client.log_batch(run_id, metrics=items[i : i + 500])
    client.log_dict(run_id, report, REPORT_ARTIFACT)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        client.log_text(run_id, svg_bars(report), "levels.svg")
        return
    models, lvls = list(report["after"]), report["levels"]
    fig, ax = plt.subplots(figsize=(1.2 + 1.4 * len(lvls), 4))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        ax.bar(np.arange(len(lvls)) + i * width, [report["after"][m][lv]["wape"] for lv in lvls], width,
               label=m)
    ax.set_xticks(np.arange(len(lvls)) + 0.4 - width / 2, lvls)
    ax.set_ylabel("WAPE (holdout)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    client.log_figure(run_id, fig, "levels.png")
    plt.close(fig)


def champion_level_report(tenant: str, *, engine=None, settings=None, tracking_uri: str | None = None
                          ) -> dict | None:
    """The per-level report stored with the tenant's champion version (what the report page shows).

    Args:
        tenant: whose model (its name from the tenant's profile, ``features.profile.model_name_for``).
        engine: state store (default: one on ``settings.database_url``).
        settings: ``features.settings.Settings`` (default: ``get_settings()``).
        tracking_uri: MLflow URI (default: the settings').

    Returns:
        ``{"model_name", "version", "run_id", "tags": {...}, "report": level_report(...)}``; None when the
        tenant has no champion, or its champion was trained before reports were stored.
    """
    import json

    import mlflow

    from features.profile import get_profile, model_name_for
    from features.settings import get_settings
    from training._data import open_engine
    from training.registry import client

    settings = settings or get_settings()
    with open_engine(settings, engine) as eng:
        name = model_name_for(tenant, get_profile(eng, tenant))
    c = client(tracking_uri)
    try:
        mv = c.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        return None
    names = {a.path for a in c.list_artifacts(mv.run_id)}
    if REPORT_ARTIFACT not in names:
        return None
    path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=REPORT_ARTIFACT)
    with open(path) as fh:
        report = json.load(fh)
    tags = {k: mv.tags[k] for k in REPORT_TAGS if k in mv.tags}
    return {"model_name": name, "version": str(mv.version), "run_id": mv.run_id, "tags": tags,
            "report": report}
