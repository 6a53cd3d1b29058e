"""Cold start: forecasts for units with no or little history from similar items.

A unit whose history before the origin is empty (a new SKU, a new store) gets no forecast from its own past.
:func:`similar_items_forecast` forecasts it from its *peers*: the warm units that share its most specific
attribute with any warm member (the caller orders the attributes, e.g. same SKU elsewhere, then same
category/brand, then same location), or all warm units when none shares any. The peers' forecasts come from
the global model (its static covariates, prices, promotions and calendar of the forecast periods), so the
cold unit inherits their seasonality and promotion response. With no history its level is unknown, so its
quantile at level q is the q-quantile of the peers' medians (its P50 the peers' median: the MAE-optimal
point when the peers' volumes are skewed; its band the spread of their levels). A unit with a few observed
periods has the peers' mean forecast scaled by the ratio of its own sales to the peers' mean sales over those
same periods.

:func:`category_average` is the reference a cold-start method must beat: the peers' mean sales over the last
periods before the origin, flat over the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["category_average", "cold_units", "peer_labels", "peer_groups", "similar_items_forecast"]

#: A unit with fewer observed periods than this many seasons (and at least 2) is cold where no global model
#: forecasts it: its own few periods give a level at best, no trend or season.
COLD_SEASONS = 1


def cold_units(y_hist: np.ndarray, season: int) -> np.ndarray:
    """(N,) True for units with fewer than ``max(2, COLD_SEASONS * season)`` observed periods.

    Args:
        y_hist: (N, T) history before the origin, ``NaN`` = unobserved (before the first sale).
        season: seasonal period.
    """
    n = (~np.isnan(np.asarray(y_hist, dtype=np.float64))).sum(axis=1)
    return n < max(2, COLD_SEASONS * int(season))


def _match(cold: np.ndarray, groups: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Peers of each cold unit and the index of the group they share (-1: none, all warm units).

    One pass over the warm units per group builds ``value -> warm indices``; the arrays are shared between
    cold units with the same peers (callers may cache on them), so the cost is linear in the units.
    """
    cold = np.asarray(cold, bool)
    warm = np.flatnonzero(~cold)
    if len(warm) == 0:
        raise ValueError("cold start needs at least one unit with history to borrow from; every unit is cold")
    index = []
    for g in groups:
        g = np.asarray(g)
        order = warm[np.argsort(g[warm], kind="stable")]
        values, starts = np.unique(g[order], return_index=True)
        index.append(dict(zip(values.tolist(), np.split(order, starts[1:]), strict=True)))
    peers, which = [], []
    for i in np.flatnonzero(cold):
        found = -1
        for k, (g, idx) in enumerate(zip(groups, index, strict=True)):
            if np.asarray(g)[i] in idx:
                found = k
                break
        peers.append(index[found][np.asarray(groups[found])[i]] if found >= 0 else warm)
        which.append(found)
    return peers, which


def peer_groups(cold: np.ndarray, groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Peer indices of each cold unit: warm units sharing its first attribute (in order) that has any.

    Args:
        cold: (N,) True for the units to forecast from peers.
        groups: attribute label arrays (N,) each, most specific first.

    Returns:
        One int array of peer indices per cold unit (in the order of ``np.flatnonzero(cold)``); all warm
        units where no attribute is shared.
    """
    return _match(cold, groups)[0]


def peer_labels(cold: np.ndarray, groups: Sequence[np.ndarray], names: Sequence[str]) -> list[str]:
    """Per cold unit (in the order of :func:`peer_groups`), the attribute its peers share, or ``"all"``."""
    return [names[k] if k >= 0 else "all" for k in _match(cold, groups)[1]]


def similar_items_forecast(
    y_hist: np.ndarray,
    forecasts: np.ndarray,
    cold: np.ndarray,
    groups: Sequence[np.ndarray],
    levels: Sequence[float] | None = None,
) -> np.ndarray:
    """Forecasts of the cold units from their peers' forecasts (see the module docstring).

    Args:
        y_hist: (N, T) history up to the origin (``NaN`` = unobserved).
        forecasts: (N, H, Q) the model's forecasts (the cold rows are ignored).
        cold: (N,) units to forecast from peers.
        groups: attribute label arrays (N,) each, most specific first.
        levels: (Q,) quantile levels of ``forecasts`` (default: Q evenly spaced levels).

    Returns:
        (N, H, Q): ``forecasts`` with the cold rows replaced.
    """
    out = np.array(forecasts, dtype=float, copy=True)
    y_hist = np.asarray(y_hist, float)
    Q = out.shape[2]
    levels = (np.arange(Q) + 0.5) / Q if levels is None else np.asarray(levels, float)
    mid = int(np.argmin(np.abs(levels - 0.5)))
    spread: dict[int, np.ndarray] = {}  # per peer group (shared arrays): the no-history forecast
    for i, peers in zip(np.flatnonzero(cold), peer_groups(cold, groups), strict=True):
        seen = ~np.isnan(y_hist[i])
        if seen.any():  # a little history: the peers' mean scaled to the unit's level over the same periods
            peer_level = np.nanmean(y_hist[np.ix_(peers, np.flatnonzero(seen))])
            own = float(np.mean(y_hist[i, seen]))
            f = out[peers].mean(axis=0) * (own / peer_level if peer_level > 0 else 0.0)
        else:  # no history: the level is unknown; the spread of the peers' medians is the uncertainty
            key = id(peers)
            if key not in spread:
                spread[key] = np.quantile(forecasts[peers, :, mid], levels, axis=0).T
            f = spread[key]
        out[i] = np.sort(np.maximum(f, 0.0), axis=-1)
    return out


def category_average(
    y_hist: np.ndarray, H: int, cold: np.ndarray, groups: Sequence[np.ndarray], window: int = 6
) -> np.ndarray:
    """The reference: each cold unit's peers' mean sales over the last ``window`` periods, flat (N, H).

    Rows of warm units are ``NaN``.
    """
    y_hist = np.asarray(y_hist, float)
    out = np.full((y_hist.shape[0], H), np.nan)
    for i, peers in zip(np.flatnonzero(cold), peer_groups(cold, groups), strict=True):
        out[i] = np.nanmean(y_hist[peers, -window:])
    return out
