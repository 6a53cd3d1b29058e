"""``replenish demo --no-serve`` end to end on a fresh home: the demo files through ingest and the cycle.

A smaller training config keeps it short. The recommendations must come through the cycle run record and
carry evidence naming the model version and the reconciliation method.
"""

from __future__ import annotations

import re

import pytest
import yaml

pytestmark = pytest.mark.slow

TRAIN = {
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


def test_demo_runs_the_cycle_on_the_ingested_files_and_then_reuses_the_champion(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from serving.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("REPLENISH_HOME", str(home))
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(TRAIN))
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--train-config", str(cfg)])
    out = result.output
    assert result.exit_code == 0, out
    for step in ("ingest the demo files", "profile of tenant 'demo'", "cycle:", "API key"):
        assert re.search(rf"\[\d/5\] {re.escape(step)}", out), f"{step}:\n{out}"
    assert "350 series x 60 periods" in out and "generated (marked): suppliers" in out
    # The demo's files are plain files in the home, ingested like any tenant's.
    files = sorted(p.name for p in (home / "demo-files").iterdir())
    assert "sales.parquet" in files and "generated_inventory.parquet" in files and len(files) == 11
    run_id = re.search(r"cycle ([0-9a-f]{32}) for tenant demo: succeeded", out).group(1)
    assert re.search(r"model: demo-tft version \d+", out)
    assert re.search(r"reconciliation: \w+", out)
    assert (home / "state.db").exists() and (home / "mlflow.db").exists()

    from features.runs import get_run
    from features.settings import get_settings
    from features.store._db import make_engine, session_scope
    from workflow.access import authenticate
    from workflow.evidence import get as get_evidence
    from workflow.lifecycle import list_recommendations

    engine = make_engine(get_settings().database_url)
    run = get_run(engine, "demo", run_id)
    assert [s.stage for s in run.stages] == ["train", "forecast", "reconcile", "plan", "propose"]
    assert all(s.status == "succeeded" for s in run.stages) and run.requested_by == "demo"
    model_version = run.stage("train").outputs["model_version"]
    method = run.stage("reconcile").outputs["reconciliation_method"]
    assert run.stage("forecast").outputs["model_version"] == model_version
    assert run.stage("forecast").counts["units"] == 350
    assert run.stage("plan").outputs["plan_run"] == run_id
    proposed = run.stage("propose").counts
    assert proposed["created"] == run.stage("plan").counts["recommendations"] > 0

    key = re.search(r"key (rpk_\S+)", out).group(1)
    with session_scope(engine) as s:
        principal = authenticate(s, key)
        assert principal is not None and principal.tenant_id == "demo"
        recs = list_recommendations(s, "demo", limit=10_000)
        assert len(recs) == proposed["total"]
        for rec in recs[:20]:
            body = get_evidence(s, "demo", rec.evidence_sha256).body
            assert body["model_version"] == model_version
            assert body["reconciliation_method"] == method
            assert body["plan_run"] == run_id and body["forecast"]["forecast_run"] == run_id
    engine.dispose()

    again = CliRunner().invoke(app, ["demo", "--no-serve", "--train-config", str(cfg)])
    assert again.exit_code == 0, again.output
    assert "reusing it" in again.output  # the champion of the first run
    assert "0 rows stored" in again.output  # a re-sent file is idempotent
    second = re.search(r"cycle ([0-9a-f]{32}) for tenant demo: succeeded", again.output).group(1)
    engine = make_engine(get_settings().database_url)
    assert [s.stage for s in get_run(engine, "demo", second).stages] == [
        "forecast", "reconcile", "plan", "propose"]
    engine.dispose()
