"""The forecast quality page (/ui/forecast-quality) over a real tiny trained model and its stored report.

A synthetic tenant is ingested into the test's home (real SQLite store, Parquet facts, MLflow backend),
trained with a tiny TFT by the cycle's train stage (which stores the per-level report with the version)
and made champion; the page must show that report's figures, for the tenant signed in only.
"""

from __future__ import annotations

import json
import re

import pytest


@pytest.fixture
def world():
    from features.settings import get_settings
    from tests.serving._pages_fixture import make_world

    return make_world(get_settings())


@pytest.fixture
def client(world):
    from fastapi.testclient import TestClient

    with TestClient(world.app) as c:
        yield c


def _sign_in(client, key):
    token = re.search(r'name="csrf_token" value="([^"]*)"', client.get("/ui/login").text).group(1)
    r = client.post("/ui/login", data={"api_key": key, "next": "/ui/queue", "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303


def _train_tenant_a(tmp_path):
    """Ingest and train tenant "a" (tiny budget); champion by hand if the gate refused (a first model)."""
    from tests.training._tenant import TINY_TRAIN, ingest_synth
    from training.pipeline import promote
    from training.quiet import quiet
    from training.stage import _merge, train_tenant

    kinds = ("channels", "locations", "skus", "planning_units", "sales", "promotions")  # what training reads
    ingest_synth("a", tmp_path / "a", kinds=kinds, n_series=12, n_periods=120, freq="D", seed=5)
    windows = {"fit": {"encoder_length": 14, "horizon": 7}, "holdout": 7}
    with quiet():
        res = train_tenant("a", overrides=_merge(TINY_TRAIN, windows))
    if not res.promoted:
        promote(res.version, res.model_name)
    return res


def test_forecast_quality_page_shows_the_champions_stored_level_report(client, world, tmp_path):
    import mlflow

    from training.level_report import champion_level_report
    from training.registry import client as mlflow_client

    _sign_in(client, world.keys["a-planner"])
    assert 'id="no-report"' in client.get("/ui/forecast-quality").text  # no model yet: said, not a 500

    res = _train_tenant_a(tmp_path)
    mv = mlflow_client().get_model_version(res.model_name, res.version)
    with open(mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="levels.json")) as fh:
        stored = json.load(fh)
    doc = champion_level_report("a")
    assert doc["version"] == res.version and doc["report"] == stored

    html = client.get("/ui/forecast-quality").text
    assert f"version <code>{res.version}</code>" in html and 'id="quality-chart"' in html and "<svg" in html
    after = html[html.index('id="after"'):html.index('id="before"')]
    for lvl in stored["levels"]:
        for model in ("served", "tft", "auto_ets", "seasonal_naive"):
            figs = stored["after"][model][lvl]
            cells = re.search(rf"<tr><td>{lvl}</td><td>{model}</td>(.*?)</tr>", after, re.S)
            assert cells, (lvl, model)
            assert f"{figs['wape']:.4f}" in cells.group(1) and f"{figs['mae']:.4f}" in cells.group(1)
            # served / model on WAPE
            ratio = stored["after"]["served"][lvl]["wape"] / figs["wape"]
            assert f"{ratio:.3f}" in cells.group(1), (lvl, model)
    before = html[html.index('id="before"'):]
    total = stored["before"]["auto_ets"]["total"]
    assert re.search(rf"<td>total</td><td>auto_ets</td>.*?{total['mase']:.4f}", before, re.S)

    # another metric redraws the chart; an unknown one is refused with the expected names
    assert "MASE (holdout" in client.get("/ui/forecast-quality?metric=mase").text
    bad = client.get("/ui/forecast-quality?metric=colour")
    assert bad.status_code == 422 and "expected one of mae, wape" in bad.text

    # tenant b (no model) sees no report of tenant a
    client.cookies.clear()
    _sign_in(client, world.keys["b-planner"])
    other = client.get("/ui/forecast-quality").text
    assert 'id="no-report"' in other and res.model_name not in other
