"""``replenish demo --no-serve`` end to end on a fresh home (a smaller training config keeps it short)."""

from __future__ import annotations

import re

import pytest
import yaml

pytestmark = pytest.mark.slow

TRAIN = {
    "name": "replenish-tft",
    "data": {"source": "stallion"},
    "model": {"hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4, "dropout": 0.1},
    "fit": {
        "encoder_length": 12,
        "min_encoder_length": 6,
        "horizon": 6,
        "season": 12,
        "batch_size": 32,
        "batches_per_epoch": 3,
        "max_epochs": 1,
        "patience": 1,
        "learning_rate": 0.01,
        "refit": False,
        "seed": 7,
        "progress": False,
    },
    "backtest": {"origins": 1, "step": 6},
    "holdout": 6,
}


def test_demo_runs_every_step_and_a_second_run_reuses_what_exists(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from serving.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("REPLENISH_HOME", str(home))
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(TRAIN))
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--train-config", str(cfg)])
    out = result.output
    assert result.exit_code == 0, out
    for step in (
        "ingest Stallion",
        "train a short TFT",
        "register + promote",
        "forecast + reconcile",
        "simulate + plan",
        "route",
        "API key",
    ):
        assert re.search(rf"\[\d/8\] {re.escape(step)} \.\.\.\n(?:.*\n)*?\s+done in", out), f"{step}:\n{out}"
    assert "350 series x 60 periods" in out
    assert "champion = version 1" in out
    assert re.search(r"350 units x 6 months x 5 quantiles .* coherent: True", out)
    assert re.search(r"350 units planned .* TFT champion version 1; \d+ recommendations", out)
    handed = re.search(r"(\d+) recommendations handed to the control plane: \{(.*)\}", out)
    assert handed and int(handed.group(1)) > 0 and "routed" in handed.group(2)
    assert (home / "state.db").exists() and (home / "mlflow.db").exists()

    # The state is real: the key works against the stored recommendations.
    from features.settings import get_settings
    from features.store._db import make_engine, session_scope
    from workflow.access import authenticate
    from workflow.lifecycle import list_recommendations

    key = re.search(r"key (rpk_\S+)", out).group(1)
    engine = make_engine(get_settings().database_url)
    with session_scope(engine) as s:
        principal = authenticate(s, key)
        assert principal is not None and principal.tenant_id == "demo"
        assert len(list_recommendations(s, "demo", limit=1000)) == int(handed.group(1))
    engine.dispose()

    again = CliRunner().invoke(app, ["demo", "--no-serve", "--train-config", str(cfg)])
    assert again.exit_code == 0, again.output
    assert "already registered in this home; reusing it" in again.output
    assert "0 rows stored" in again.output  # a re-sent batch is idempotent
