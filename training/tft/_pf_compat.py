"""pytorch-forecasting compatibility for the reference paths.

Expresses an :class:`~training.windows.InputSpec` as ``TimeSeriesDataSet`` parameters, so the reference
path (``TemporalFusionTransformer.predict(DataFrame)``) runs on our model.

Used by the inference benchmark and the tests that check :func:`training.windows.make_batch` against
``TimeSeriesDataSet``; never on the training or serving path. The fitted scalers and encoders are built from
the spec's JSON figures (nothing is pickled or re-fitted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.windows import InputSpec

__all__ = ["dataset_parameters", "reference_frame", "attach_dataset_parameters"]


def _scaler(mean: float, std: float):
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler()
    sc.mean_ = np.array([mean], dtype=np.float64)
    sc.scale_ = np.array([std], dtype=np.float64)
    sc.var_ = sc.scale_**2
    sc.n_features_in_ = 1
    sc.n_samples_seen_ = 1
    return sc


def _encoder(labels: list[str]):
    from pytorch_forecasting.data.encoders import NaNLabelEncoder

    enc = NaNLabelEncoder(add_nan=False)
    enc.classes_ = {v: i for i, v in enumerate(labels)}
    enc.classes_vector_ = np.array(labels)
    return enc


def dataset_parameters(spec: InputSpec) -> dict:
    """``TimeSeriesDataSet`` keyword arguments equivalent to ``spec`` (for ``from_parameters``)."""
    from pytorch_forecasting.data.encoders import EncoderNormalizer

    f = spec.frame
    t = spec.target
    scaled = [*f["static_reals"], *f["known_reals"], f"{t}_center", f"{t}_scale"]
    scalers = {c: _scaler(spec.mean[c], spec.std[c]) for c in scaled}
    scalers.update({"relative_time_idx": None, "encoder_length": None})
    return dict(
        time_idx="time_idx",
        target=t,
        group_ids=list(f["series_keys"]),
        weight=None,
        max_encoder_length=spec.encoder_length,
        min_encoder_length=spec.min_encoder_length,
        max_prediction_length=spec.horizon,
        min_prediction_length=spec.horizon,
        static_categoricals=list(f["static_categoricals"]),
        static_reals=list(f["static_reals"]),
        time_varying_known_categoricals=list(f["known_categoricals"]),
        time_varying_known_reals=list(f["known_reals"]),
        time_varying_unknown_categoricals=[],
        time_varying_unknown_reals=[t],
        add_relative_time_idx=True,
        add_target_scales=True,
        add_encoder_length=True,
        target_normalizer=EncoderNormalizer(transformation="log1p"),
        categorical_encoders={c: _encoder(spec.vocab[c]) for c in spec.x_categoricals},
        scalers=scalers,
        randomize_length=None,
        predict_mode=False,
    )


def reference_frame(df: pd.DataFrame, spec: InputSpec) -> pd.DataFrame:
    """The long frame with the integer ``time_idx`` and string categoricals ``TimeSeriesDataSet`` needs."""
    f = spec.frame
    out = df.copy()
    t = pd.to_datetime(out[f["time"]])
    if f["freq"] in ("MS", "M", "ME"):
        out["time_idx"] = (t.dt.year - t.min().year) * 12 + t.dt.month - t.min().month
    else:
        days = ((t - t.min()) / pd.Timedelta(1, "D")).astype(np.int64)
        out["time_idx"] = days // 7 if str(f["freq"]).startswith("W") else days
    for c in spec.x_categoricals:
        if c not in out.columns and c == "weekday":
            out[c] = t.dt.weekday.astype(str)
        elif c not in out.columns and c == "month":
            out[c] = t.dt.month.astype(str)
        else:
            out[c] = out[c].astype(str)
    for c in f["series_keys"]:
        out[c] = out[c].astype(str)
    return out


def attach_dataset_parameters(net, spec: InputSpec):
    """Attach the ``dataset_parameters`` that ``TemporalFusionTransformer.predict(DataFrame)`` reads."""
    net.dataset_parameters = dataset_parameters(spec)
    return net
