import pytest

from training.config import TrainConfigError, load_train_config


def test_defaults_and_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: t1\nfit:\n  horizon: 3\n  max_epochs: 2\n")
    cfg = load_train_config(p)
    assert cfg.fit.horizon == 3 and cfg.model.quantiles[2] == 0.5


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"fit": {"horizon": 0}}, "fit.horizon"),
        ({"fit": {"learning_rate": -1}}, "fit.learning_rate"),
        ({"modle": {}}, "modle"),
        ({"model": {"quantiles": [0.1, 0.9, 0.5]}}, "model"),
        ({"model": {"hidden_size": "big"}}, "model.hidden_size"),
        ({"fit": {"encoder_length": 10, "min_encoder_length": 20}}, "fit"),
        ({"name": "has space"}, "name"),
    ],
)
def test_bad_config_names_the_field(bad, field):
    with pytest.raises(TrainConfigError) as e:
        load_train_config(bad)
    assert f"  {field}" in str(e.value)


def test_quantiles_must_include_p10_p50_p90():
    with pytest.raises(TrainConfigError, match="0.1, 0.5 and 0.9"):
        load_train_config({"model": {"quantiles": [0.2, 0.5, 0.8]}})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(TrainConfigError, match="nope.yaml"):
        load_train_config(tmp_path / "nope.yaml")


def test_lags_shorter_than_the_horizon_are_refused():
    with pytest.raises(
        TrainConfigError, match=r"data.lags = \[2\]: lags \[2\] are shorter than fit.horizon = 6"
    ):
        load_train_config({"data": {"lags": [2]}, "fit": {"horizon": 6}})


def test_holdout_shorter_than_the_horizon_names_both_fields():
    with pytest.raises(
        TrainConfigError, match=r"holdout = 3 is shorter than fit.horizon = 6.*set holdout >= 6"
    ):
        load_train_config({"holdout": 3, "fit": {"horizon": 6}})


def test_stallion_source_is_gone_from_production_configs():
    with pytest.raises(TrainConfigError, match="data.source"):
        load_train_config({"data": {"source": "stallion"}})


def test_lag_columns_are_known_inputs_from_history(shared_home):
    import numpy as np

    from features.frames import LAG_PREFIX
    from training.pipeline import load_panel

    cfg = load_train_config(
        {"data": {"tenant": "monthly", "lags": [12]}, "fit": {"horizon": 3}, "holdout": 3}
    )
    panel = load_panel(cfg)
    assert panel.spec.freq == "MS" and panel.n_times == 40  # month-end dates on the month-start grid
    j = list(panel.spec.known_reals).index(f"{LAG_PREFIX}12")
    np.testing.assert_allclose(panel.known_real[:, 12:, j], np.log1p(panel.y[:, :-12]), rtol=1e-6)


def test_tenant_without_sales_is_refused():
    from training.pipeline import load_panel

    with pytest.raises(ValueError, match="no sales facts; ingest them first"):
        load_panel(load_train_config({}))
