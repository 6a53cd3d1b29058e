"""Forecast fan charts for the backtest: the best and worst series by WAPE."""

from __future__ import annotations

import numpy as np

from features.frames import Panel
from training.backtest import BacktestResult

__all__ = ["best_worst_fan_charts", "draw_fan"]


def draw_fan(ax, times, history, actual, quantiles: np.ndarray, levels: list[float], title: str) -> None:
    """Draw one fan chart: history, actuals, median and the P10..P90 / P25..P75 bands.

    Args:
        ax: matplotlib axes.
        times: (T_h + H,) timestamps of history then horizon.
        history: (T_h,) past targets.
        actual: (H,) actuals over the horizon.
        quantiles: (H, Q) forecasts.
        levels: (Q,) quantile levels.
        title: axes title.
    """
    th = len(history)
    ft = times[th:]
    ax.plot(times[:th], history, color="0.3", lw=1, label="history")
    ax.plot(ft, actual, color="black", lw=1.5, marker="o", ms=3, label="actual")
    for lo, hi, alpha in ((0.1, 0.9, 0.2), (0.25, 0.75, 0.35)):
        if lo in levels and hi in levels:
            ax.fill_between(
                ft,
                quantiles[:, levels.index(lo)],
                quantiles[:, levels.index(hi)],
                color="C0",
                alpha=alpha,
                label=f"P{int(lo * 100)}-P{int(hi * 100)}",
            )
    ax.plot(ft, quantiles[:, levels.index(0.5)], color="C0", lw=1.5, label="P50")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def best_worst_fan_charts(panel: Panel, result: BacktestResult, k: int = 3, context: int = 24) -> dict:
    """Figures ``fan_worst.png`` and ``fan_best.png``.

    The ``k`` series with the highest / lowest WAPE at the last backtest origin (zero-volume series skipped).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if result.forecasts is None:
        return {}
    o = result.origins[-1]
    H = result.actuals.shape[2]
    order = result.by_series.dropna(subset=["wape"]).sort_values("wape")
    figs = {}
    for name, idx in (("fan_best.png", order.index[:k]), ("fan_worst.png", order.index[::-1][:k])):
        fig, axes = plt.subplots(len(idx), 1, figsize=(7, 2.2 * len(idx)), squeeze=False)
        for ax, i in zip(axes[:, 0], idx, strict=True):
            lo = max(0, o - context)
            times = panel.times[lo : o + H]
            draw_fan(
                ax,
                times,
                panel.y[i, lo:o],
                result.actuals[-1, i],
                result.forecasts[-1, i],
                result.levels,
                f"{result.by_series.series[i]}  WAPE {result.by_series.wape[i]:.3f}",
            )
        axes[0, 0].legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        figs[name] = fig
    return figs
