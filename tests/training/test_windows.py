"""Our batch assembly gives exactly the tensors pytorch-forecasting's TimeSeriesDataSet gives (same spec)."""

import numpy as np
import pandas as pd
import pytest
import torch

from features.frames import build_panel, tenant_frame, tenant_spec, unit_statics
from training.windows import PanelTensors, enumerate_windows, fit_input_spec, make_batch


def test_enumerate_windows_by_hand():
    s, t0 = enumerate_windows(np.array([0, 2, 9]), np.array([9, 9, 9]), 3, 2, 8)
    assert s.tolist() == [0] * 5 + [1] * 3
    assert t0.tolist() == [3, 4, 5, 6, 7, 5, 6, 7]


SPEC = tenant_spec("D", attributes=("category", "region"), lags=(14,))


@pytest.fixture(scope="module")
def small():
    """12 synthetic daily series with promotions, attributes and a lag; one starts late (a short encoder)."""
    from features.synth import generate

    data = generate(12, 120, "D", seed=4)
    frame = tenant_frame(data.sales, SPEC, promotions=data.promotions)
    keys = ["sku_id", "location_id", "channel_id"]
    statics = unit_statics(frame.select(keys).unique(), SPEC, skus=data.skus, locations=data.locations)
    df = frame.join(statics, on=keys).to_pandas()
    df["date"] = pd.to_datetime(df["date"])
    first = df[keys].drop_duplicates().sort_values(keys).iloc[3]
    late = (df[keys] == first.values).all(axis=1) & (df.date < df.date.min() + pd.Timedelta(days=100))
    return df[~late].reset_index(drop=True)


def test_make_batch_equals_timeseriesdataset(small):
    from pytorch_forecasting import TimeSeriesDataSet

    from training.tft._pf_compat import dataset_parameters, reference_frame

    panel = build_panel(small, SPEC)
    spec = fit_input_spec(panel, 90, 28, 7, [0.1, 0.5, 0.9], min_encoder_length=6)
    pt = PanelTensors.from_panel(panel, spec)
    params = dataset_parameters(spec)
    ds = TimeSeriesDataSet.from_parameters(params, reference_frame(small, spec), predict=True)
    x_ref, _ = next(iter(ds.to_dataloader(train=False, batch_size=100, num_workers=0)))
    n = panel.n_series
    x, _ = make_batch(pt, spec, torch.arange(n), torch.full((n,), panel.n_times - 7))
    assert sorted(x_ref["encoder_lengths"].tolist()) == sorted(x["encoder_lengths"].tolist())
    assert x["encoder_lengths"].min() < 28  # the late series really has a short encoder
    keys = ("encoder_cont", "decoder_cont", "encoder_cat", "decoder_cat", "encoder_lengths", "target_scale")
    for k in keys:
        a, b = x[k], x_ref[k]
        if k == "decoder_cont":  # the last column is the (unused) future target, hidden by us
            a, b = a[..., :-1], b[..., :-1]
        np.testing.assert_allclose(a.double().numpy(), b.double().numpy(), atol=2e-5, err_msg=k)
