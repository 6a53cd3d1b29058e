import numpy as np
import pytest

from features.synth import generate
from features.synth_truth import demand_distribution


@pytest.mark.parametrize("freq", ["D", "M"])
def test_replayed_distribution_matches_the_generated_sales(freq):
    kw = dict(n_series=300, n_periods=120, freq=freq, seed=7, intermittent_share=0.5, promo_rate=0.1)
    data = generate(**kw)
    truth = demand_distribution(**kw).check(data)
    qty = data.sales["qty"].to_numpy().reshape(300, 120)
    # Sums over many periods agree with the true means within sampling error.
    assert abs(qty.sum() / truth.mean.sum() - 1) < 0.03
    per_series = qty.sum(axis=1) / truth.mean.sum(axis=1)
    assert np.median(per_series) == pytest.approx(1.0, abs=0.1)
    # The true quantiles are quantiles of the sales: P(Y < Q_q) <= q <= P(Y <= Q_q), within sampling error.
    q = np.array([0.1, 0.5, 0.9])
    Qs = truth.quantiles(q)
    at_or_below = (qty[..., None] <= Qs).mean(axis=(0, 1))
    below = (qty[..., None] < Qs).mean(axis=(0, 1))
    assert np.all(below <= q + 0.01) and np.all(at_or_below >= q - 0.01)


def test_check_refuses_data_from_other_arguments():
    data = generate(50, 60, "D", seed=1)
    with pytest.raises(ValueError, match="promotion calendar"):
        demand_distribution(50, 60, "D", seed=2).check(data)
