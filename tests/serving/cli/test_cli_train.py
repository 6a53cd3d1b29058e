"""``replenish train / forecast / models list / forecasts export`` on tenants' own data, through the CLI."""

from __future__ import annotations

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

NOISE = (
    "GPU available",
    "Successfully registered",
    "Downloading artifacts",
    "LeafSpec",
    "litlogger",
    "Traceback",
)


def _cli(*args):
    from serving.cli import app

    return CliRunner().invoke(app, [*args], catch_exceptions=False)


def test_models_list_without_a_name_shows_every_tenants_model(shared_home):
    out = _cli("models", "list")
    assert out.exit_code == 0, out.output
    for tenant in ("daily", "weekly", "monthly"):
        line = next(ln for ln in out.output.splitlines() if f"{tenant}-tft" in ln)
        assert tenant in line.replace(f"{tenant}-tft", "")  # its tenant tag
    one = _cli("models", "list", "--tenant", "weekly")
    assert one.exit_code == 0 and "backtest_wape" in one.output and "champion" in one.output


def test_forecast_then_export_with_key_run_and_version_columns(shared_home, tmp_path):
    out = _cli("forecast", "--tenant", "weekly", "--run", "cli-1")
    assert out.exit_code == 0, out.output
    assert "run cli-1" in out.output and not any(n in out.output for n in NOISE)
    version = shared_home.results["weekly"].version
    for suffix in ("csv", "parquet"):
        path = tmp_path / f"fc.{suffix}"
        exp = _cli(
            "forecasts",
            "export",
            "--tenant",
            "weekly",
            "--stage",
            "base",
            "--run",
            "cli-1",
            "--out",
            str(path),
        )
        assert exp.exit_code == 0, exp.output
        rows = pl.read_csv(path) if suffix == "csv" else pl.read_parquet(path)
        assert {
            "sku_id",
            "location_id",
            "channel_id",
            "run_id",
            "model_version",
            "date",
            "p10",
            "p90",
        } <= set(rows.columns)
        assert (rows["run_id"] == "cli-1").all()
        assert (
            rows.filter(pl.col("source").str.starts_with("model:"))["model_version"]
            .cast(pl.String)
            .eq(version)
            .all()
        )
        assert rows.height == 24 * shared_home.results["weekly"].horizon
    bad = _cli("forecasts", "export", "--tenant", "weekly", "--out", str(tmp_path / "x.txt"))
    assert bad.exit_code == 2 and ".csv or .parquet" in bad.output


def test_forecast_without_a_champion_names_the_command(shared_home):
    out = _cli("forecast", "--tenant", "ghost")
    assert out.exit_code == 1
    assert "replenish train --tenant ghost" in " ".join(out.output.split())


@pytest.mark.slow
def test_train_remembers_the_config_and_refuses_bad_ones(tmp_path):
    """A fresh tenant: a bad file changes nothing; a good one is remembered; later commands need no flags."""
    from features.profile import get_profile
    from features.settings import get_settings
    from features.store import make_engine
    from tests.training._tenant import TINY_TRAIN, ingest_synth

    ingest_synth("solo", tmp_path / "in", n_series=12, n_periods=60, freq="W", seed=9, start="2024-01-01")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"fit": {"horizon": 6}, "holdout": 2}))
    out = _cli("train", "--tenant", "solo", "-c", str(bad))
    assert out.exit_code == 2 and "holdout = 2 is shorter than fit.horizon = 6" in " ".join(
        out.output.split()
    )
    engine = make_engine(get_settings().database_url)
    assert get_profile(engine, "solo").train == {}

    good = tmp_path / "good.yaml"
    cfg = {
        **TINY_TRAIN,
        "name": "solo-model",
        "fit": {**TINY_TRAIN["fit"], "encoder_length": 8, "horizon": 3},
    }
    good.write_text(yaml.safe_dump({**cfg, "holdout": 3}))
    out = _cli("train", "--tenant", "solo", "-c", str(good))
    assert out.exit_code == 0, out.output
    assert "version 1" in out.output and not any(n in out.output for n in NOISE)
    profile = get_profile(engine, "solo")
    assert profile.model_name == "solo-model" and profile.train["fit"]["horizon"] == 3
    engine.dispose()
    _cli("models", "promote", "1", "--tenant", "solo")
    out = _cli("forecast", "--tenant", "solo", "--run", "r1")  # no flags: the profile names the model
    assert out.exit_code == 0, out.output
    assert "solo-model version 1" in " ".join(out.output.split())


def test_backtest_of_the_champion_on_the_tenants_data(shared_home):
    out = _cli("backtest", "--tenant", "monthly")
    assert out.exit_code == 0, out.output
    assert "WAPE by hierarchy level" in out.output and "monthly-tft champion" in out.output
    assert "seasonal_naive" in out.output and not any(n in out.output for n in NOISE)
