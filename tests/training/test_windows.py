"""Our batch assembly gives exactly the tensors pytorch-forecasting's TimeSeriesDataSet gives (same spec)."""

import numpy as np
import pandas as pd
import pytest
import torch

from features.frames import STALLION_SPEC, build_panel, stallion_frame
from training.pipeline import STALLION_PATH
from training.windows import PanelTensors, enumerate_windows, fit_input_spec, make_batch


def test_enumerate_windows_by_hand():
    s, t0 = enumerate_windows(np.array([0, 2, 9]), np.array([9, 9, 9]), 3, 2, 8)
    assert s.tolist() == [0] * 5 + [1] * 3
    assert t0.tolist() == [3, 4, 5, 6, 7, 5, 6, 7]


@pytest.fixture(scope="module")
def small():
    df = stallion_frame(pd.read_parquet(STALLION_PATH))
    keys = df[["agency", "sku"]].drop_duplicates().sort_values(["agency", "sku"]).head(12)
    df = df.merge(keys, on=["agency", "sku"])
    # one series starts late: 20 months of history -> a shorter encoder than the others
    first = keys.iloc[3]
    late = (df.agency == first.agency) & (df.sku == first.sku) & (df.date < "2016-04-01")
    return df[~late].reset_index(drop=True)


def test_make_batch_equals_timeseriesdataset(small):
    from pytorch_forecasting import TimeSeriesDataSet

    from training.tft._pf_compat import dataset_parameters, reference_frame

    panel = build_panel(small, STALLION_SPEC)
    spec = fit_input_spec(panel, 47, 36, 6, [0.1, 0.5, 0.9], min_encoder_length=6)
    pt = PanelTensors.from_panel(panel, spec)
    params = dataset_parameters(spec)
    ds = TimeSeriesDataSet.from_parameters(params, reference_frame(small, spec), predict=True)
    x_ref, _ = next(iter(ds.to_dataloader(train=False, batch_size=100, num_workers=0)))
    n = panel.n_series
    x, _ = make_batch(pt, spec, torch.arange(n), torch.full((n,), panel.n_times - 6))
    assert sorted(x_ref["encoder_lengths"].tolist()) == sorted(x["encoder_lengths"].tolist())
    assert x["encoder_lengths"].min() < 36  # the late series really has a short encoder
    keys = ("encoder_cont", "decoder_cont", "encoder_cat", "decoder_cat", "encoder_lengths", "target_scale")
    for k in keys:
        a, b = x[k], x_ref[k]
        if k == "decoder_cont":  # the last column is the (unused) future target, hidden by us
            a, b = a[..., :-1], b[..., :-1]
        np.testing.assert_allclose(a.double().numpy(), b.double().numpy(), atol=2e-5, err_msg=k)
