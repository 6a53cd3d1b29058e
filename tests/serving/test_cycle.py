"""The cycle's orchestration on real stores: a tenant's ingested files, stored forecasts, plan, proposals.

No model is trained here (that is the training tests' and the demo test's job): the forecast facts are
written through ``features.forecasts`` as the forecast/reconcile stages would, and the cycle runs the stages
downstream of them, alone or together, recording each in ``features.runs``.
"""

from __future__ import annotations

import json

import pytest

from tests.serving import _cycle_data
from tests.serving._cycle_data import TENANT, store_forecast

settings, ingested = _cycle_data.settings, _cycle_data.ingested  # the shared fixtures


def test_plan_and_propose_alone_run_on_the_stored_forecasts_and_are_recorded(settings, ingested):
    from features.runs import get_run
    from features.store._db import session_scope
    from serving.cycle import run_cycle
    from workflow.evidence import get as get_evidence
    from workflow.lifecycle import list_recommendations

    engine, data = ingested
    store_forecast(settings, data)
    seen = []
    run = run_cycle(TENANT, stages=["propose", "plan"], settings=settings, engine=engine,
                    progress=lambda s, d, t: seen.append((s, d, t)))
    assert run.status == "succeeded", run.error
    assert [s.stage for s in run.stages] == ["plan", "propose"]  # the cycle's order, whatever the caller's
    plan, propose = run.stage("plan"), run.stage("propose")
    assert plan.outputs["plan_run"] == run.run_id  # the plan run is the cycle run's id
    assert plan.outputs["forecast_run"] == "fc1" and plan.outputs["reconciliation_method"] == "wls_struct"
    assert plan.outputs["model_version"] == "3"
    assert plan.counts["units"] > 0 and plan.counts["recommendations"] > 0
    assert propose.counts["total"] == plan.counts["recommendations"] == propose.counts["created"]
    assert sum(propose.counts["by_state"].values()) == propose.counts["total"]
    assert all(s.seconds is not None and s.seconds >= 0 for s in run.stages)
    assert {s for s, _, _ in seen} == {"plan", "propose"}
    assert ("propose", 1, 1) in seen and seen[0] == ("plan", 0, 1)
    assert get_run(engine, TENANT, run.run_id) == run

    # The proposals came from this run and name the forecast it planned on.
    with session_scope(engine) as s:
        recs = list_recommendations(s, TENANT, limit=10_000)
        body = get_evidence(s, TENANT, recs[0].evidence_sha256).body
    assert len(recs) == propose.counts["total"]
    assert body["plan_run"] == run.run_id and body["model_version"] == "3"
    assert body["reconciliation_method"] == "wls_struct" and body["forecast"]["forecast_run"] == "fc1"
    assert body["data_watermark"]

    # Proposing the same plan run again (propose alone: the newest plan run) adds nothing.
    again = run_cycle(TENANT, stages=["propose"], settings=settings, engine=engine)
    assert again.status == "succeeded"
    assert again.stage("propose").counts["created"] == 0
    assert again.stage("propose").outputs["plan_run"] == run.run_id


def test_a_failing_stage_fails_the_run_with_its_message_and_skips_the_rest(settings, ingested):
    from features.profile import update_profile
    from features.runs import create_run
    from serving.cycle import run_cycle

    engine, data = ingested
    store_forecast(settings, data)
    run_id = create_run(engine, TENANT, ["plan", "propose"], requested_by="test")  # as the API records it
    # A profile naming a routing file that does not exist fails the plan stage.
    update_profile(engine, TENANT, routing="/nonexistent/routing.yaml")
    run = run_cycle(TENANT, run_id=run_id, settings=settings, engine=engine)
    assert run.status == "failed"
    plan = run.stage("plan")
    assert plan.status == "failed" and "/nonexistent/routing.yaml" in plan.error
    assert "Traceback" not in plan.error and len(plan.error) < 500
    assert run.error.startswith("plan: ")
    assert run.stage("propose").status == "skipped"


def test_cli_cycle_stage_plan_alone_prints_a_summary_and_exits_0(settings, ingested):
    from typer.testing import CliRunner

    from serving.cli import app

    engine, data = ingested
    store_forecast(settings, data)
    result = CliRunner().invoke(app, ["cycle", "--tenant", TENANT, "--stage", "plan"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "plan run:" in result.output
    assert "reconciliation: wls_struct" in result.output and "version 3" in result.output

    as_json = CliRunner().invoke(app, ["cycle", "--tenant", TENANT, "--stage", "plan", "--stage", "propose",
                                       "--json"])
    assert as_json.exit_code == 0, as_json.output
    record = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert record["status"] == "succeeded" and [s["stage"] for s in record["stages"]] == ["plan", "propose"]
    assert record["stages"][1]["counts"]["created"] == record["stages"][0]["counts"]["recommendations"]


def test_cli_cycle_exits_1_with_the_stage_error_and_refuses_unknown_stages_and_tenants(settings, ingested):
    from typer.testing import CliRunner

    from serving.cli import app

    # No forecast stored: the reconcile stage fails with its message.
    missing = CliRunner().invoke(app, ["cycle", "--tenant", TENANT, "--stage", "reconcile"])
    assert missing.exit_code == 1, missing.output
    assert "cycle failed: reconcile:" in missing.output and "Traceback" not in missing.output
    bad = CliRunner().invoke(app, ["cycle", "--tenant", TENANT, "--stage", "bake"])
    assert bad.exit_code == 2 and "expected one of" in bad.output
    ghost = CliRunner().invoke(app, ["cycle", "--tenant", "ghost", "--stage", "plan"])
    assert ghost.exit_code == 1 and "tenant 'ghost' does not exist" in ghost.output


def test_train_auto_adds_training_only_without_a_champion(settings, ingested):
    from features.runs import get_run
    from serving.cycle import has_champion, start_cycle

    engine, _ = ingested
    assert not has_champion(TENANT, settings, engine)
    auto = get_run(engine, TENANT, start_cycle(TENANT, train="auto", settings=settings, engine=engine))
    assert [s.stage for s in auto.stages] == ["train", "forecast", "reconcile", "plan", "propose"]
    plain = get_run(engine, TENANT, start_cycle(TENANT, settings=settings, engine=engine))
    assert [s.stage for s in plain.stages] == ["forecast", "reconcile", "plan", "propose"]
    assert plain.status == "queued" and plain.options == {"stages": [], "train": False}
    forced = start_cycle(TENANT, stages=["plan"], train=True, settings=settings, engine=engine)
    assert [s.stage for s in get_run(engine, TENANT, forced).stages] == ["train", "plan"]
    with pytest.raises(ValueError, match="unknown \\['bake'\\]"):
        start_cycle(TENANT, stages=["bake"], settings=settings, engine=engine)


@pytest.mark.slow
def test_the_whole_cycle_with_training_on_a_weekly_tenant(settings, ingested):
    from typer.testing import CliRunner

    from features.profile import update_profile
    from features.runs import get_run
    from features.store._db import session_scope
    from serving.cli import app
    from workflow.evidence import get as get_evidence
    from workflow.lifecycle import list_recommendations

    engine, _ = ingested
    update_profile(engine, TENANT, train={
        "model": {"hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4},
        "fit": {"encoder_length": 12, "min_encoder_length": 6, "horizon": 8, "batch_size": 32,
                "batches_per_epoch": 3, "max_epochs": 1, "patience": 1, "refit": False},
    })
    result = CliRunner().invoke(app, ["cycle", "--tenant", TENANT, "--train", "--promote-first", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    run = get_run(engine, TENANT, record["run_id"])
    assert [s.stage for s in run.stages] == ["train", "forecast", "reconcile", "plan", "propose"]
    version = run.stage("train").outputs["model_version"]
    assert run.stage("forecast").outputs["model_version"] == version
    assert run.stage("forecast").counts["freq"] == "W"
    method = run.stage("reconcile").outputs["reconciliation_method"]
    assert run.stage("plan").outputs["forecast_run"] == run.run_id
    with session_scope(engine) as s:
        recs = list_recommendations(s, TENANT, limit=1000)
        assert len(recs) == run.stage("propose").counts["total"] > 0
        body = get_evidence(s, TENANT, recs[0].evidence_sha256).body
    assert body["model_version"] == version and body["reconciliation_method"] == method
    assert body["forecast"]["period_days"] == 7.0  # planned on the weekly grid
