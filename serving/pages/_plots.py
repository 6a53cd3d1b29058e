"""Server-side plots of the planner pages: matplotlib to inline SVG (no JavaScript, no CDN).

Every function takes plain arrays and returns an SVG document as text; matplotlib's Agg/SVG backends only, so
it runs in any replica without a display.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np

__all__ = [
    "accuracy_bars",
    "fan_chart",
    "inventory_history",
    "inventory_projection",
    "item_history",
    "lines_over_time",
    "period_dates",
    "project_inventory",
]


def _figure(width_in: float = 7.0, height_in: float = 3.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=96)
    return fig, fig.add_subplot(1, 1, 1)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.find("<svg") :]  # inline: drop the XML prolog and DOCTYPE


def period_dates(start: date, n: int, freq: str | None = None, period_days: float = 30.0) -> list[date]:
    """The first day of ``n`` consecutive periods from ``start``.

    Daily (``D``), weekly (``W``), monthly (``MS``/``M``: the first of each month from ``start``'s month),
    else every ``period_days`` days.
    """
    f = (freq or "").upper()
    if f.startswith("M"):
        y, m = start.year, start.month
        return [date(y + (m - 1 + k) // 12, (m - 1 + k) % 12 + 1, 1) for k in range(n)]
    step = 1.0 if f.startswith("D") else 7.0 if f.startswith("W") else float(period_days)
    return [start + timedelta(days=round(k * step)) for k in range(n)]


def _date_axis(ax, dates: Sequence[date]) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def fan_chart(
    levels: Sequence[float],
    q: np.ndarray,
    history: np.ndarray | None = None,
    title: str = "",
    dates: Sequence[date] | None = None,
) -> str:
    """Forecast fan: nested quantile bands around the median.

    Args:
        levels: quantile levels ``(Q,)``, ascending.
        q: forecasts ``(H, Q)``.
        history: optional past demand ``(T,)``, drawn before the forecast.
        title: chart title.
        dates: the first day of each forecast period (x axis as dates; only without ``history``).
    """
    q = np.asarray(q, dtype=float)
    levels = list(levels)
    fig, ax = _figure()
    t0 = 0 if history is None else len(history)
    if history is not None and len(history):
        ax.plot(np.arange(t0), history, color="#333333", lw=1.4, label="demand")
    h = np.arange(t0, t0 + q.shape[0])
    if dates is not None and history is None:
        h = np.asarray(list(dates)[: q.shape[0]], dtype="datetime64[D]")
    n_bands = len(levels) // 2
    for k in range(n_bands):  # outermost band first, lightest
        lo, hi = levels[k], levels[-1 - k]
        ax.fill_between(
            h,
            q[:, k],
            q[:, -1 - k],
            color="#1f6fb2",
            alpha=0.15 + 0.2 * k,
            lw=0,
            label=f"P{round(lo * 100)}-P{round(hi * 100)}",
        )
    mid = int(np.argmin([abs(x - 0.5) for x in levels]))
    ax.plot(h, q[:, mid], color="#1f6fb2", lw=2, marker="o", ms=3, label=f"P{round(levels[mid] * 100)}")
    if dates is not None and history is None:
        _date_axis(ax, dates)
        ax.set_xlabel("period starting")
    else:
        ax.set_xlabel("period")
    ax.set_ylabel("units")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return _svg(fig)


def project_inventory(
    position: float, demand_q: np.ndarray, order_qty: float, lead_periods: int
) -> np.ndarray:
    """Projected on-hand inventory per period for each demand quantile path.

    Args:
        position: inventory position now (on hand + on order - backorders - committed).
        demand_q: demand quantiles ``(H, Q)``.
        order_qty: the recommended order, arriving after ``lead_periods``.
        lead_periods: periods until the order arrives.

    Returns:
        ``(H, Q)`` projected inventory at the end of each period; high demand quantiles give low inventory,
        so column ``k`` pairs with demand quantile ``Q - 1 - k``.
    """
    d = np.cumsum(np.asarray(demand_q, dtype=float), axis=0)  # (H, Q) cumulative demand
    h = np.arange(1, d.shape[0] + 1)[:, None]
    arrivals = np.where(h >= max(int(lead_periods), 0), float(order_qty), 0.0)
    return position + arrivals - d[:, ::-1]


def inventory_projection(
    proj: np.ndarray,
    levels: Sequence[float],
    safety_stock: float | None,
    reorder_point: float | None,
    title: str = "",
    dates: Sequence[date] | None = None,
) -> str:
    """Projected inventory band with the safety stock and reorder point as horizontal lines.

    ``dates``: the end of each period (x axis as dates; else periods ahead). Below zero is a backorder:
    the area under the zero line is shaded and labelled so.
    """
    proj = np.asarray(proj, dtype=float)
    fig, ax = _figure()
    h = np.arange(1, proj.shape[0] + 1)
    if dates is not None:
        h = np.asarray(list(dates)[: proj.shape[0]], dtype="datetime64[D]")
    ax.fill_between(
        h,
        proj[:, 0],
        proj[:, -1],
        color="#2a9d5b",
        alpha=0.25,
        lw=0,
        label=f"P{round(levels[0] * 100)}-P{round(levels[-1] * 100)} demand",
    )
    mid = proj.shape[1] // 2
    ax.plot(h, proj[:, mid], color="#2a9d5b", lw=2, marker="o", ms=3, label="median demand")
    if safety_stock is not None:
        ax.axhline(safety_stock, color="#d62728", ls="--", lw=1.2, label=f"safety stock {safety_stock:,.0f}")
    if reorder_point is not None:
        ax.axhline(
            reorder_point, color="#ff7f0e", ls=":", lw=1.5, label=f"reorder point {reorder_point:,.0f}"
        )
    ax.axhline(0, color="#555555", lw=0.8)
    low = float(np.min(proj))
    if low < 0:
        ax.axhspan(low * 1.05, 0, color="#d62728", alpha=0.07, lw=0, label="below 0: backorders")
        ax.text(
            0.99,
            0.02,
            "below 0 = backorders (unmet demand)",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            color="#a02c1c",
        )
    if dates is not None:
        _date_axis(ax, dates)
        ax.set_xlabel("end of period")
    else:
        ax.set_xlabel("periods ahead")
    ax.set_ylabel("on hand (negative: backorders)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best", frameon=False)
    ax.grid(alpha=0.3)
    return _svg(fig)


def accuracy_bars(labels: Sequence[str], values: Sequence[float], metric: str) -> str:
    """One horizontal bar per (level, model version) group."""
    fig, ax = _figure(7.0, max(1.5, 0.35 * len(labels) + 0.8))
    y = np.arange(len(labels))
    ax.barh(y, values, color="#1f6fb2")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.grid(alpha=0.3, axis="x")
    return _svg(fig)


def lines_over_time(
    series: dict[str, tuple[Sequence, Sequence[float]]],
    ylabel: str,
    title: str = "",
    reference: float | None = None,
) -> str:
    """One line per label over time (e.g. WAPE per model version by target period).

    Args:
        series: ``label -> (dates, values)``, each of shape (T_label,).
        ylabel: the measured figure.
        title: the plot's title.
        reference: a dashed horizontal line (e.g. the nominal coverage 0.8).
    """
    fig, ax = _figure(7.0, 2.8)
    for label, (x, v) in sorted(series.items()):
        ax.plot(list(x), list(v), marker="o", markersize=3, linewidth=1.4, label=str(label))
    if reference is not None:
        ax.axhline(reference, color="#888", linestyle="--", linewidth=1, label=f"nominal {reference:g}")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7, loc="best", frameon=False)
    fig.autofmt_xdate()
    return _svg(fig)


def _svg_fixed(fig, left: float = 0.09) -> str:
    """:func:`_svg` with fixed margins and text kept as SVG text, for plots whose labels are known to fit.

    One render instead of two (``bbox_inches="tight"`` draws the figure once to measure it), and text as
    ``<text>`` rather than glyph outlines: a third of the time, and readable by screen readers and search.
    """
    import matplotlib

    fig.subplots_adjust(left=left, right=0.98, bottom=0.16, top=0.91)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.find("<svg") :]


_RUN_COLOURS = ("#1f6fb2", "#b2301f", "#2a7f3f", "#7a3fa0", "#8f5316", "#0f7c8c", "#555555")


def item_history(
    sales_dates: Sequence[date],
    sales_qty: Sequence[float],
    runs: Sequence[tuple[str, str, Sequence[date], np.ndarray]],
    levels: Sequence[float],
    title: str = "",
) -> str:
    """Sales history with stored forecasts over it: each run's median, the newest run's outer band.

    Args:
        sales_dates: the first day of each sales period ``(T,)``.
        sales_qty: units sold per period ``(T,)``.
        runs: ``(label, model version, period starts (H,), quantiles (H, Q))`` per forecast run, newest first;
            one colour per model version, so forecasts of one model read as one family.
        levels: quantile levels ``(Q,)`` of the newest run, ascending.
        title: chart title.
    """
    fig, ax = _figure(7.5, 3.2)
    if len(sales_dates):
        ax.plot(
            np.asarray(list(sales_dates), dtype="datetime64[D]"),
            np.asarray(sales_qty, float),
            color="#222222",
            lw=1.1,
            label="sales",
        )
    colour: dict[str, str] = {}
    for i, (label, version, dates, q) in enumerate(runs):
        q = np.asarray(q, dtype=float)
        x = np.asarray(list(dates), dtype="datetime64[D]")
        c = colour.setdefault(version, _RUN_COLOURS[len(colour) % len(_RUN_COLOURS)])
        if i == 0 and q.shape[1] >= 2:
            ax.fill_between(
                x,
                q[:, 0],
                q[:, -1],
                color=c,
                alpha=0.2,
                lw=0,
                label=f"{label}: P{round(levels[0] * 100)}-P{round(levels[-1] * 100)}",
            )
        mid = q.shape[1] // 2
        ax.plot(
            x,
            q[:, mid],
            color=c,
            lw=1.6 if i == 0 else 1.0,
            alpha=1.0 if i == 0 else 0.7,
            label=f"{label} (model {version}) P50" if i < 4 else None,
        )
    every = [d for _, _, ds, _ in runs for d in ds] + list(sales_dates)
    if every:
        _date_axis(ax, every)
    ax.set_xlabel("period starting")
    ax.set_ylabel("units")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return _svg_fixed(fig)


def inventory_history(
    dates: Sequence[date],
    on_hand: Sequence[float],
    on_order: Sequence[float],
    backorders: Sequence[float],
    title: str = "",
) -> str:
    """Inventory snapshots over time: on hand, on order, and backorders drawn below zero.

    Args:
        dates: snapshot days ``(T,)``.
        on_hand: units on hand ``(T,)``.
        on_order: units on order ``(T,)``.
        backorders: units owed to customers ``(T,)``, shown as negative.
        title: chart title.
    """
    fig, ax = _figure(7.5, 2.8)
    x = np.asarray(list(dates), dtype="datetime64[D]")
    mark = {"marker": "o", "ms": 3} if len(x) < 60 else {}  # a lone snapshot still shows
    ax.step(x, np.asarray(on_hand, float), where="post", color="#2a7f3f", lw=1.5, label="on hand", **mark)
    ax.step(
        x,
        np.asarray(on_order, float),
        where="post",
        color="#1f6fb2",
        lw=1.0,
        ls="--",
        label="on order",
        **mark,
    )
    back = np.asarray(backorders, float)
    if np.any(back > 0):
        ax.fill_between(
            x, -back, 0, step="post", color="#b2301f", alpha=0.3, lw=0, label="backorders (below 0)"
        )
    ax.axhline(0, color="#555555", lw=0.8)
    if len(x):
        _date_axis(ax, dates)
    ax.set_xlabel("snapshot date")
    ax.set_ylabel("units (negative: backorders)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return _svg_fixed(fig)
