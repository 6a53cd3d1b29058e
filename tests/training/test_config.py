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
