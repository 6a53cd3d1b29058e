"""The true demand distribution behind :func:`features.synth.generate`: the floor no forecast can beat.

``generate`` draws each period's sales as ``Poisson(lam * G)`` with ``G ~ Gamma(5, 1/5)`` independent per
period and ``lam = level * trend * yearly * weekly * promo_lift``. A Poisson whose mean is Gamma-mixed is a
negative binomial: sales in a period are ``NegBin(r=5, p=5 / (5 + lam))``, mean ``lam``, variance
``lam + lam**2 / 5``. An oracle that knows ``lam`` (the series' parameters and the promotion calendar) can do
no better than that distribution's quantiles.

``generate`` does not return ``lam``. :func:`demand_distribution` replays the generator's random stream with
the same arguments up to the draws that fix ``lam`` (same ``numpy.random.default_rng(seed)``, the same calls
in the same order) and rebuilds it. Replaying is only right while both stay in step, so
:meth:`SynthTruth.check` compares the replayed promotion calendar, drawn from the same stream, with the
generated sales and raises if ``generate`` has changed.

Example::

    data = generate(2_000, 730, "D", seed=0, intermittent_share=0.5)
    truth = demand_distribution(2_000, 730, "D", seed=0, intermittent_share=0.5).check(data)
    truth.quantiles((0.1, 0.5, 0.9))     # (2000, 730, 3)
"""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np

from features.synth import FREQS, SynthData, _default_sizes, _ids, _locations, _period_dates, _skus

__all__ = ["GAMMA_SHAPE", "SynthTruth", "demand_distribution"]

#: Shape of the Gamma mixing of ``generate``'s Poisson rate (so the ``r`` of the negative binomial).
GAMMA_SHAPE = 5.0


@dataclasses.dataclass(frozen=True)
class SynthTruth:
    """Per-period demand distribution of a generated data set.

    Attributes:
        mean: (N, T) expected sales per series and period (``lam``), series in the order of ``sales``.
        promo: (N, T) promoted periods.
        shape: ``r`` of the negative binomial (the Gamma shape).
    """

    mean: np.ndarray
    promo: np.ndarray
    shape: float = GAMMA_SHAPE

    def quantiles(self, levels, periods: slice | None = None) -> np.ndarray:
        """(N, T', Q) quantiles of ``NegBin(r, r / (r + mean))`` at ``levels`` for ``periods`` (None: all)."""
        from scipy.stats import nbinom

        lam = self.mean if periods is None else self.mean[:, periods]
        q = np.asarray(levels, dtype=np.float64)
        p = self.shape / (self.shape + lam)
        return nbinom.ppf(q[None, None, :], self.shape, p[..., None])

    def check(self, data: SynthData) -> SynthTruth:
        """Raise if ``data`` was not generated with these arguments (or ``generate`` changed); return self."""
        n, t = self.promo.shape
        promo = data.sales["promo"].to_numpy()
        if promo.size != n * t or not np.array_equal(promo.reshape(n, t), self.promo):
            raise ValueError("the replayed promotion calendar differs from the generated sales: the "
                             "arguments differ from generate()'s, or features.synth.generate changed its "
                             "random draws")
        return self


def demand_distribution(
    n_series: int,
    n_periods: int,
    freq: str = "D",
    seed: int = 0,
    start: str | date = "2023-01-01",
    *,
    n_channels: int | None = None,
    n_locations: int | None = None,
    intermittent_share: float = 0.3,
    promo_rate: float = 0.05,
) -> SynthTruth:
    """Replay :func:`features.synth.generate` with the same arguments and return its demand distribution.

    Args:
        n_series: as for ``generate``.
        n_periods: as for ``generate``.
        freq: as for ``generate``.
        seed: as for ``generate``.
        start: as for ``generate``.
        n_channels: as for ``generate``.
        n_locations: as for ``generate``.
        intermittent_share: as for ``generate``.
        promo_rate: as for ``generate``.

    Returns:
        A :class:`SynthTruth`; call :meth:`SynthTruth.check` with the generated data to make sure.
    """
    if freq not in FREQS:
        raise ValueError(f"freq={freq!r}: expected one of {sorted(FREQS)}")
    rng = np.random.default_rng(seed)
    start_date = date.fromisoformat(start) if isinstance(start, str) else start
    n_channels, n_stores, n_skus = _default_sizes(n_series, n_channels, n_locations)
    # The draws generate() makes before demand, in its order (their values are not needed here).
    _skus(rng, _ids("SKU", n_skus))
    _locations(rng, _ids("STORE", n_stores))
    dates = _period_dates(start_date, n_periods, freq)
    t = np.arange(n_periods)
    intermittent = rng.random(n_series) < intermittent_share
    low = rng.uniform(0.05, 0.8, n_series)
    high = rng.lognormal(np.log(8.0), 0.9, n_series)
    level = np.where(intermittent, low, high) * (FREQS[freq] if freq != "D" else 1)
    trend = 1.0 + rng.uniform(-0.2, 0.3, n_series)[:, None] * (t / max(n_periods - 1, 1))[None, :]
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    amp = rng.uniform(0.0, 0.4, n_series)[:, None]
    phase = rng.uniform(0.0, 2 * np.pi, n_series)[:, None]
    yearly = 1.0 + amp * np.sin(2 * np.pi * doy[None, :] / 365.25 + phase)
    if freq == "D":
        weekday = (dates.astype(np.int64) + 3) % 7
        weekly = np.array([0.9, 0.85, 0.9, 0.95, 1.1, 1.3, 1.2])[weekday][None, :]
    else:
        weekly = np.ones((1, n_periods))
    p_promo = rng.uniform(0.0, 2.0 * promo_rate, n_series)[:, None]
    promo = rng.random((n_series, n_periods)) < p_promo
    rng.uniform(0.1, 0.35, (n_series, n_periods))  # discounts: drawn by generate(), not needed here
    lift = 1.0 + promo * rng.uniform(0.3, 1.2, n_series)[:, None]
    return SynthTruth(mean=level[:, None] * trend * yearly * weekly * lift, promo=promo)
