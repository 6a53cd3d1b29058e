import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.statistical import (
    DEFAULT_LEVELS,
    DEFAULT_MODELS,
    MODELS,
    fit_predict,
    min_history,
    rolling_fit_predict,
)

FAST = ("naive", "seasonal_naive", "croston_sba")


def _mixed_panel(rng: np.random.Generator) -> np.ndarray:
    """12 series x 60 periods: seasonal, trending, intermittent, short, late, gappy, empty."""
    T = 60
    t = np.arange(T)
    y = np.empty((12, T))
    y[0:3] = 20 + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, (3, T))
    y[3:5] = 5 + 0.4 * t + rng.normal(0, 1, (2, T))
    y[5:8] = rng.poisson(0.3, (3, T))
    y[8] = np.nan
    y[8, -2:] = [3.0, 4.0]                    # two observations only
    y[9] = rng.poisson(4.0, T)
    y[9, :45] = np.nan                        # starts late: 15 observations
    y[10] = rng.poisson(6.0, T)
    y[10, [20, 21, 40]] = np.nan              # interior gaps
    y[11] = np.nan                            # never observed
    return y


@pytest.fixture(scope="module")
def mixed():
    y = _mixed_panel(np.random.default_rng(0))
    return y, fit_predict(y, season=12, horizon=6, levels=DEFAULT_LEVELS, models=DEFAULT_MODELS)


def test_every_model_gives_finite_monotone_nonnegative_quantiles(mixed):
    y, out = mixed
    assert set(out) == set(DEFAULT_MODELS)
    for name, F in out.items():
        assert F.shape == (12, 6, len(DEFAULT_LEVELS)), name
        assert np.isfinite(F).all(), name
        assert (np.diff(F, axis=-1) >= 0).all(), name
        assert (F >= 0).all(), name


def test_short_and_empty_series_fall_back_to_last_value(mixed):
    y, out = mixed
    for F in out.values():
        np.testing.assert_allclose(F[8], 4.0)   # two observations: flat last value, zero width
        np.testing.assert_allclose(F[11], 0.0)  # no observation: zero


def test_naive_median_is_the_last_value(mixed):
    y, out = mixed
    for i in (0, 3, 9, 10):
        np.testing.assert_allclose(out["naive"][i, :, 2], y[i, ~np.isnan(y[i])][-1])


def test_seasonal_models_recover_a_clean_season_better_than_naive():
    rng = np.random.default_rng(1)
    T, H = 96, 12
    t = np.arange(T + H)
    truth = 50 + 15 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6, (6, 1)))
    y = truth + rng.normal(0, 1.0, truth.shape)
    out = fit_predict(y[:, :T], 12, H, models=("naive", "seasonal_naive", "auto_ets", "theta"))
    mae = {m: np.abs(F[:, :, 2] - truth[:, T:]).mean() for m, F in out.items()}
    for m in ("seasonal_naive", "auto_ets", "theta"):
        assert mae[m] < 0.3 * mae["naive"], mae


def test_empirical_quantiles_of_intermittent_models_are_close_to_the_true_ones():
    from scipy.stats import poisson

    from training.metrics import pinball

    rng = np.random.default_rng(2)
    T, H, q = 300, 28, np.array([0.1, 0.5, 0.9])
    y = rng.poisson(0.5, (40, T + H)).astype(float)
    F = fit_predict(y[:, :T], 7, H, levels=q, models=("croston_sba", "tsb"))
    true = np.broadcast_to(poisson.ppf(q, 0.5), (40, H, 3))
    floor = pinball(y[:, T:], true, q)
    for name, Q in F.items():
        assert Q[..., 0].max() < 0.25, name     # most days sell nothing: the lower quantile is about zero
        assert pinball(y[:, T:], Q, q) < 1.1 * floor, name
        # within a rounding of the discrete true quantiles, [P10, P90] covers about 80 %
        inside = (y[:, T:] >= Q[..., 0] - 0.1) & (y[:, T:] <= Q[..., 2] + 0.1)
        assert 0.75 <= inside.mean() <= 0.99, (name, inside.mean())


def test_rolling_forecasts_see_nothing_after_their_origin():
    rng = np.random.default_rng(3)
    y = rng.poisson(5.0, (5, 80)).astype(float)
    changed = y.copy()
    changed[:, 50:] *= 10
    a = rolling_fit_predict(y, [40, 50], 7, 7, models=FAST)
    b = rolling_fit_predict(changed, [40, 50], 7, 7, models=FAST)
    for fa, fb in zip(a, b, strict=True):
        for m in FAST:
            np.testing.assert_allclose(fa[m], fb[m])


def test_max_history_crops_the_fit():
    y = np.concatenate([np.full((2, 50), 100.0), np.full((2, 20), 1.0)], axis=1)
    out = fit_predict(y, 1, 3, models=("theta",), max_history=20)
    np.testing.assert_allclose(out["theta"][:, :, 2], 1.0, atol=1e-6)


def test_empirical_intervals_for_every_model():
    rng = np.random.default_rng(4)
    y = rng.poisson(rng.uniform(0.3, 12, (6, 1)), (6, 120)).astype(float)
    out = fit_predict(y, 7, 14, models=("naive", "theta"), intervals="empirical")
    for F in out.values():
        assert F.shape == (6, 14, 5) and np.isfinite(F).all() and (np.diff(F, axis=-1) >= 0).all()
    native = fit_predict(y, 7, 14, models=("naive",))["naive"]
    assert not np.allclose(out["naive"], native)   # empirical, not the Gaussian band of the random walk
    with pytest.raises(ValueError, match="intervals"):
        fit_predict(y, 7, 14, models=("naive",), intervals="conformal")


def test_min_history_and_bad_input():
    assert min_history("auto_ets", 12) == 26 and min_history("naive", 12) == 3
    with pytest.raises(ValueError, match="levels"):
        fit_predict(np.ones((2, 30)), 1, 3, levels=(0.5, 0.1))
    with pytest.raises(ValueError, match="models"):
        fit_predict(np.ones((2, 30)), 1, 3, models=("prophet",))
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        fit_predict(np.ones(30), 1, 3)
    with pytest.raises(ValueError, match="origins"):
        rolling_fit_predict(np.ones((2, 30)), [0, 31], 1, 3)
    assert set(DEFAULT_MODELS) <= set(MODELS)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(1, 6), T=st.integers(1, 40), H=st.integers(1, 8),
       levels=st.lists(st.floats(0.02, 0.98), min_size=1, max_size=5, unique=True))
def test_quantiles_are_monotone_for_any_panel(seed, n, T, H, levels):
    rng = np.random.default_rng(seed)
    y = rng.poisson(rng.uniform(0.1, 20, (n, 1)), (n, T)).astype(float)
    y[rng.random((n, T)) < 0.1] = np.nan
    q = sorted(round(v, 3) for v in levels)
    if len(set(q)) < len(q):
        return
    out = fit_predict(y, 7, H, levels=q, models=FAST)
    for F in out.values():
        assert F.shape == (n, H, len(q))
        assert np.isfinite(F).all() and (np.diff(F, axis=-1) >= 0).all()


def test_hand_written_point_baselines_equal_statsforecast_where_both_exist():
    """The hand-written last value, seasonal naive and moving average kept in training.baselines (the TFT's
    blend and backtest table run them at every batch and origin) give statsforecast's Naive, SeasonalNaive
    and WindowAverage point forecasts on gap-free series, so keeping them changes no figure."""
    import polars as pl
    from statsforecast import StatsForecast
    from statsforecast.models import Naive, SeasonalNaive, WindowAverage

    from training.baselines import last_value, moving_average, seasonal_naive

    rng = np.random.default_rng(4)
    y = rng.poisson(rng.uniform(0.5, 20.0, (12, 1)), (12, 40)).astype(float)
    frame = pl.DataFrame({"unique_id": np.repeat(np.arange(12), 40), "ds": np.tile(np.arange(40), 12),
                          "y": y.reshape(-1)})
    sf = StatsForecast(models=[Naive(), SeasonalNaive(season_length=7), WindowAverage(window_size=3)], freq=1)
    out = sf.forecast(df=frame, h=9).sort("unique_id", "ds")
    np.testing.assert_allclose(last_value(y, 9).reshape(-1), out["Naive"].to_numpy())
    np.testing.assert_allclose(seasonal_naive(y, 9, 7).reshape(-1), out["SeasonalNaive"].to_numpy())
    np.testing.assert_allclose(moving_average(y, 9, 3).reshape(-1), out["WindowAverage"].to_numpy())
