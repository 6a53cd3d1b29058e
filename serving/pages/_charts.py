"""Dashboard charts: matplotlib to inline, accessible SVG (a title and a description a screen reader reads).

Each function takes plain values and returns the SVG as text with ``role="img"``, a ``<title>`` and a
``<desc>`` (the chart's summary) as its first children, referenced by ``aria-labelledby``. Every drawn series
carries an id (``series-<n>``, ``bars-<n>``) so tests can find its data points; the same figures are also
given to the page as a table.
"""

from __future__ import annotations

import html
import io
import itertools
import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np

__all__ = ["grouped_bars", "lines_over_time"]

# Colour-blind-safe (Okabe-Ito), dark enough on white for lines and bars.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000")
_ids = itertools.count(1)


def _figure(width_in: float, height_in: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=96)
    return fig, fig.add_subplot(1, 1, 1)


def _accessible(fig, title: str, desc: str) -> str:
    """The figure as inline SVG with ``role="img"``, ``<title>`` and ``<desc>`` (unique ids per chart)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: smaller, readable, searchable
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.find("<svg") :]
    cid = f"chart-{next(_ids)}"
    head_end = text.find(">") + 1
    tag = re.sub(r"\s(role|aria-labelledby)=\"[^\"]*\"", "", text[:head_end])
    tag = tag[:-1] + f' role="img" aria-labelledby="{cid}-t {cid}-d">'
    body = f'<title id="{cid}-t">{html.escape(title)}</title><desc id="{cid}-d">{html.escape(desc)}</desc>'
    return tag + body + text[head_end:]


def _as_times(xs: Sequence) -> np.ndarray:
    """Dates to day precision, datetimes (monitoring runs) to the second, timezone dropped (UTC)."""
    if any(isinstance(x, datetime) for x in xs):
        return np.asarray([np.datetime64(x.replace(tzinfo=None), "s") for x in xs])
    return np.asarray(list(xs), dtype="datetime64[D]")


def lines_over_time(
    series: dict[str, tuple[Sequence, Sequence[float]]],
    ylabel: str,
    title: str,
    *,
    xlabel: str = "date",
    reference: float | None = None,
    reference_label: str = "target",
    percent: bool = False,
) -> str:
    """One line with markers per label, dates on the x axis.

    Args:
        series: ``label -> (dates, values)``, each of shape (T_label,).
        ylabel: the measured figure (y-axis label).
        title: the chart's title (drawn, and the SVG's ``<title>``).
        xlabel: what the dates are.
        reference: a dashed horizontal line (e.g. the nominal coverage 0.8).
        reference_label: its legend entry.
        percent: show the y axis as percentages of 1.
    """
    import matplotlib.dates as mdates
    from matplotlib.ticker import PercentFormatter

    fig, ax = _figure(7.0, 2.9)
    parts, lo, hi = [], None, None
    for k, (label, (x, v)) in enumerate(sorted(series.items())):
        xs = _as_times(x)
        if len(xs):
            lo = xs.min() if lo is None else min(lo, xs.min())
            hi = xs.max() if hi is None else max(hi, xs.max())
        (line,) = ax.plot(
            xs,
            np.asarray(v, dtype=float),
            marker="o",
            markersize=4,
            linewidth=1.5,
            color=_COLOURS[k % len(_COLOURS)],
            label=str(label),
        )
        line.set_gid(f"series-{k}")
        if len(v):
            parts.append(f"{label}: {len(v)} points from {x[0]} to {x[-1]}, last {float(v[-1]):.3g}")
    if reference is not None:
        ax.axhline(
            reference, color="#555555", linestyle="--", linewidth=1, label=f"{reference_label} {reference:g}"
        )
    if lo is not None and hi - lo < np.timedelta64(1, "D"):  # one day or less: pad it, so ticks stay readable
        pad = np.timedelta64(12, "h") if lo.dtype == np.dtype("datetime64[s]") else np.timedelta64(3, "D")
        ax.set_xlim(lo - pad, hi + pad)
    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if series or reference is not None:
        ax.legend(fontsize=7, loc="best", frameon=False)
    desc = f"Line chart of {ylabel} by {xlabel}. " + ("; ".join(parts) or "No points.")
    return _accessible(fig, title, desc)


def grouped_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[float | None]],
    xlabel: str,
    title: str,
    *,
    targets: Sequence[float | None] | None = None,
    target_label: str = "target",
    percent: bool = False,
) -> str:
    """Horizontal bars: one row per group, one bar per series; optional target tick per group.

    Args:
        groups: the row labels ``(G,)``.
        series: ``label -> values (G,)`` (None: no bar).
        xlabel: the measured figure (x-axis label).
        title: the chart's title.
        targets: a target per group, drawn as a black tick across its bars.
        target_label: the target's legend entry.
        percent: show the x axis as percentages of 1.
    """
    from matplotlib.ticker import PercentFormatter

    G, S = len(groups), max(len(series), 1)
    fig, ax = _figure(7.0, max(1.6, 0.28 * G * S + 0.9))
    y = np.arange(G)
    h = 0.8 / S
    for k, (label, values) in enumerate(series.items()):
        v = np.asarray([np.nan if x is None else float(x) for x in values], dtype=float)
        bars = ax.barh(
            y - 0.4 + h * (k + 0.5),
            np.nan_to_num(v),
            height=h,
            color=_COLOURS[k % len(_COLOURS)],
            label=label,
        )
        for i, patch in enumerate(bars.patches):
            patch.set_gid(f"bars-{k}-{i}")
    if targets is not None:
        t = [np.nan if x is None else float(x) for x in targets]
        ax.scatter(t, y, marker="|", s=400, color="#000000", linewidths=2, label=target_label, zorder=3)
    ax.set_yticks(y, [str(g) for g in groups], fontsize=8)
    ax.invert_yaxis()
    if percent:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(
        fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.5 / max(G, 1)), ncol=3, frameon=False
    )
    desc = f"Bar chart of {xlabel} for {G} groups ({', '.join(map(str, groups[:12]))}"
    desc += ", ..." if G > 12 else ""
    desc += f"); series: {', '.join(series)}" + (
        f"; {target_label} marked per group." if targets is not None else "."
    )
    return _accessible(fig, title, desc)
