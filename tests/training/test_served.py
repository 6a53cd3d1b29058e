"""The served selection on a real SQLite store, Parquet facts and MLflow backend in a temp folder.

A daily tenant whose TFT is starved (one epoch of one batch of a tiny network) is trained through
``train_tenant``; the test recomputes, independently of ``training.served``, the validation forecasts of the
TFT and of the statsforecast models on the window before the holdout, and checks that what the forecast
stage serves per demand class is the best statistical model (or an ensemble no worse on validation), never
the TFT where its validation loss is worse.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

STARVED = {
    "model": {"hidden_size": 4, "attention_head_size": 1, "hidden_continuous_size": 2},
    "fit": {"encoder_length": 14, "horizon": 7, "batch_size": 8, "batches_per_epoch": 1, "max_epochs": 1,
            "patience": 1, "refit": False, "threads": 1, "seed": 3},
    "holdout": 14,
    "backtest": {"origins": 2, "step": 7},
}


@pytest.fixture(scope="module")
def starved(tmp_path_factory):
    from features.synth import generate
    from tests.training._tenant import ingest_synth
    from training.quiet import quiet
    from training.stage import train_tenant

    root = tmp_path_factory.mktemp("starved")
    mp = pytest.MonkeyPatch()
    mp.setenv("REPLENISH_HOME", str(root / "home"))
    try:
        data = generate(48, 240, "D", seed=11, intermittent_share=0.5)
        with quiet():
            ingest_synth("starved", root / "in", data=data)
            result = train_tenant("starved", overrides=STARVED)
        yield result, str(root / "home")
    finally:
        mp.undo()


@pytest.fixture
def home(starved, monkeypatch):
    """This test's REPLENISH_HOME is the module's trained home."""
    monkeypatch.setenv("REPLENISH_HOME", starved[1])
    return starved[0]


def _validation(result):
    """Independent validation forecasts (TFT and statsforecast) and losses per series on the gate's window."""
    from training.pipeline import load_panel
    from training.predict import load_predictor
    from training.selection import segment_series, series_scale, validation_losses
    from training.served import SEGMENTING, STAT_HISTORY, STAT_MODELS, fill_gaps
    from training.stage import tenant_config
    from training.statistical import fit_predict

    config = tenant_config("starved", overrides=STARVED)
    panel = load_panel(config)
    pred = load_predictor(result.version, result.model_name)
    H, levels, season = pred.spec.horizon, list(pred.spec.quantiles), pred.spec.season
    y = fill_gaps(panel.y)
    v = panel.n_times - config.holdout - H
    before = y[:, v - STAT_HISTORY["D"] : v]
    fc = pred.forecast(panel, v)
    cands = {"tft": np.where(np.asarray(fc.cold_start)[:, None, None], np.nan, fc.quantiles),
             **fit_predict(before, season, H, levels, STAT_MODELS)}
    L, _ = validation_losses([cands], [y[:, v : v + H]], levels, series_scale(before, season))
    return cands, L, segment_series(before, season, SEGMENTING), panel, y, levels, season, H


def test_starved_tft_is_never_served_where_a_statistical_model_is_better(home):
    """Per demand class: the TFT's validation loss is worse than the best statistical model's, and the
    forecasts served there are the statistical selection's (no TFT in them)."""
    from features.forecasts import quantile_columns, read_forecasts
    from training.selection import Selection
    from training.served import STAT_HISTORY, STAT_MODELS
    from training.stage import forecast_stage
    from training.statistical import fit_predict

    result = home
    assert result.promoted, result.reason  # the served selection passed the gate: the tenant gets forecasts
    cands, L, seg, panel, y, levels, season, H = _validation(result)
    sel = Selection.from_dict(result.selection)
    models = list(cands)
    tft_worse = []
    for name, rep in sel.report.items():
        rows = seg == name
        if not rows.any() or rep["n_validated"] == 0:
            continue
        loss = dict(zip(models, np.nanmean(L[rows], axis=0), strict=True))
        best_stat = min(STAT_MODELS, key=loss.get)
        w = sel.segment_weights[name]
        tft_w = w[list(sel.models).index("tft")] if "tft" in sel.models else 0.0
        if loss["tft"] > loss[best_stat]:
            tft_worse.append(name)
            assert tft_w == 0.0, (name, loss, w)  # the worse TFT gets no weight
        if not rep["chosen"].startswith("pooled:"):
            # what is served in the segment is no worse on validation than its best statistical model
            assert rep["chosen_loss"] <= loss[best_stat] + 1e-9, (name, rep, loss)
            if rep["chosen"] != "ensemble":
                assert rep["chosen"] == min(models, key=loss.get)
    assert tft_worse, "the starved TFT should lose to a statistical model in at least one demand class"
    # segments are demand class x history length, and the TFT kept weight only where the holdout check
    # found it better than the statistical-only selection by more than the check's noise
    assert sel.segmenting == "demand_class_x_history"
    assert all(k.split("/")[-1] in ("short", "long") for k in sel.report)
    t = list(sel.models).index("tft") if "tft" in sel.models else None
    for name, rep in sel.report.items():
        if t is not None and sel.segment_weights[name][t] > 0:
            chk = rep["holdout_check"]
            assert chk["kept_tft"] and chk["gain"] > chk["se"], (name, chk)

    meta = forecast_stage("starved", run_id="served")
    rows = read_forecasts("starved", "base", "served").sort("unique_id", "horizon")
    assert meta.extra["served_tft_units"] == 0 or set(tft_worse) != set(sel.report)
    # Recompute the served forecast of every unit from the selection and the statsforecast models fitted on
    # the last 182 days: the stored quantiles are exactly that, no TFT in them.
    recent = y[:, -STAT_HISTORY["D"] :]
    serve_seg = sel.segments_of(recent, season)
    W = sel.weights_for(serve_seg)
    ids = np.asarray(panel.series_ids(), dtype=object)
    tft_free = W[:, list(sel.models).index("tft")] == 0 if "tft" in sel.models else np.ones(len(W), bool)
    assert tft_free.any()
    stats = fit_predict(recent, season, H, levels, [m for m in sel.models if m != "tft"])
    expect = sum(W[:, i, None, None] * stats[m] for i, m in enumerate(sel.models) if m != "tft")
    expect = np.maximum(np.sort(expect, axis=-1), 0.0)
    for i in np.flatnonzero(tft_free):
        got = rows.filter(pl.col("unique_id") == ids[i]).select(quantile_columns(levels)).to_numpy()
        assert got.shape == (H, len(levels))
        np.testing.assert_allclose(got, expect[i], rtol=1e-6, atol=1e-6)
        src = rows.filter(pl.col("unique_id") == ids[i])["source"][0]
        assert "model" not in src and src.split(":")[0] in ("baseline", "ensemble"), src
    for name in tft_worse:  # units of a class where the TFT lost: never served by it
        members = np.flatnonzero(serve_seg == name)
        assert tft_free[members].all()


def test_selection_and_level_report_are_stored_with_the_version(home):
    """selection.json, levels.json and the plot are artefacts of the version's run; level metrics logged."""
    import json

    import mlflow

    from training.registry import client
    from training.served import SELECTION_ARTIFACT, load_selection

    result = home
    c = client()
    mv = c.get_model_version(result.model_name, result.version)
    assert mv.tags["selection"] == SELECTION_ARTIFACT and mv.tags["served"] == result.served
    assert mv.tags["gate_decision"] == "promoted"
    sel = load_selection(c, result.model_name, result.version)
    assert sel.to_dict() == result.selection
    names = {a.path for a in c.list_artifacts(mv.run_id)}
    assert {SELECTION_ARTIFACT, "levels.json"} <= names and ({"levels.png"} & names or {"levels.svg"} & names)
    with open(mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="levels.json")) as fh:
        report = json.load(fh)
    assert report["levels"][0] == "total" and report["levels"][-1] == "series"
    for model in ("served", "tft", "auto_ets", "seasonal_naive"):
        for lvl in report["levels"]:
            figs = report["after"][model][lvl]
            assert set(figs) == {"mae", "wape", "mase", "pinball", "coverage_p10_p90"}
            assert 0.0 <= figs["coverage_p10_p90"] <= 1.0 and figs["wape"] >= 0
    # before reconciliation: each statsforecast model fitted on every aggregate's own history
    for lvl in report["levels"]:
        assert set(report["before"]["auto_ets"][lvl]) == set(report["after"]["auto_ets"][lvl])
    assert report["before"]["auto_ets"]["series"] == report["after"]["auto_ets"]["series"]
    assert report["before"]["auto_ets"]["total"] != report["after"]["auto_ets"]["total"]
    metrics = c.get_run(mv.run_id).data.metrics
    assert "level.auto_ets.total.wape.before" in metrics
    assert metrics["level.served.total.wape"] == pytest.approx(report["after"]["served"]["total"]["wape"])
    assert "holdout.selection.wape" in metrics and "holdout.tft.wape" in metrics
