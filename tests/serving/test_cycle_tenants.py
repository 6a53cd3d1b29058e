"""Three tenants through the whole cycle on real stores (SQLite, and PostgreSQL when configured), then served.

The tenants' data enters as ordinary files through ``features.ingest.ingest``, master data first: a daily
and a weekly ``replenish synth``-style tenant, and a subset of the bundled Stallion monthly data written by
the demo's data module (``serving.cli._demo_data``) as that tenant's files. Each tenant then runs
``serving.cycle.run_cycle(train=True)`` with a tiny TFT (hidden 8, one epoch of a few batches; its first
version is made champion when the gate refuses it) -> forecast -> reconcile -> plan -> propose. The trained
tenants are built once per database (module-scoped) and shared by the tests.

Over HTTP (the in-process decision app, ``serving.api.main.build_decision_app``, with one viewer key
per tenant from ``workflow.access.create_key``): forecasts differ between tenants and equal each tenant's
stored forecasts; a tenant's key never reads another tenant's forecasts, plans, risk, what-if, cycle runs or
recommendations.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path

import polars as pl
import pytest

#: A tiny TFT and a few batches: seconds per tenant on one CPU thread.
TINY = {
    "model": {"hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4},
    "fit": {"batch_size": 32, "batches_per_epoch": 3, "max_epochs": 1, "patience": 1, "refit": False,
            "threads": 1, "seed": 5},
}
#: Short windows per tenant, on its grid (the grid itself is read from the data).
WINDOWS = {
    "daily": {"fit": {"encoder_length": 14, "horizon": 7}, "holdout": 7},
    "weekly": {"fit": {"encoder_length": 12, "horizon": 4}, "holdout": 4},
    "stallion": {"fit": {"encoder_length": 12, "min_encoder_length": 6, "horizon": 6}, "holdout": 6},
}
GRIDS = {"daily": "D", "weekly": "W", "stallion": "MS"}
N_SYNTH = 30
#: The Stallion subset: the first agencies and SKUs (sorted), every month.
STALLION_AGENCIES, STALLION_SKUS = 4, 8


@dataclasses.dataclass
class Cycled:
    """The module's tenants after one cycle each: stores, keys, runs and forecasts."""

    home: Path
    db_url: str
    settings: object
    engine: object
    keys: dict[str, str]  # tenant -> viewer key
    runs: dict[str, object]  # tenant -> features.runs.CycleRun
    seconds: dict[str, float]  # tenant -> ingest + cycle wall time


def _pg_database(admin: str):
    """A new database on the PostgreSQL server of ``admin`` (its URL, and a function that drops it)."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    url = sa.engine.make_url(admin.replace("postgresql://", "postgresql+psycopg://", 1))
    admin_engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin_engine.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _stallion_files(folder: Path) -> dict[str, Path]:
    """The demo's files of a Stallion subset (first agencies x first SKUs), as the demo writes them."""
    from serving.cli._demo_data import STALLION_PATH, write_demo_files

    raw = pl.read_parquet(STALLION_PATH)
    raw = raw.drop([c for c in raw.columns if c.startswith("__index")])
    agencies = sorted(raw["agency"].cast(pl.String).unique().to_list())[:STALLION_AGENCIES]
    skus = sorted(raw["sku"].cast(pl.String).unique().to_list())[:STALLION_SKUS]
    subset = raw.filter(
        pl.col("agency").cast(pl.String).is_in(agencies) & pl.col("sku").cast(pl.String).is_in(skus)
    )
    folder.mkdir(parents=True, exist_ok=True)
    subset.write_parquet(folder / "stallion-subset.parquet")
    return write_demo_files(folder / "files", path=folder / "stallion-subset.parquet", seed=0)


def _files(tenant: str, folder: Path) -> dict[str, Path]:
    from features.synth import generate

    if tenant == "stallion":
        return _stallion_files(folder)
    data = (generate(N_SYNTH, 120, "D", seed=11, start="2024-01-01") if tenant == "daily"
            else generate(N_SYNTH, 80, "W", seed=12, start="2024-01-03"))  # weeks starting on Wednesdays
    return data.write(folder, fmt="csv")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cycled(request, tmp_path_factory):
    """The three tenants ingested, cycled with training and given a viewer key each, once per database."""
    from features.ingest import ingest
    from features.profile import update_profile
    from features.settings import load_settings
    from features.store._db import make_engine, session_scope
    from features.synth import SynthData
    from serving.cycle import run_cycle
    from serving.migrations import migrate_store
    from training.quiet import quiet
    from training.stage import _merge
    from workflow import access

    root = tmp_path_factory.mktemp(f"cycled-{request.param}")
    home = root / "home"
    drop = None
    if request.param == "sqlite":
        db_url = f"sqlite:///{home / 'state.db'}"
    else:
        admin = os.environ.get("REPLENISH_TEST_PG_URL")
        if not admin:
            pytest.skip("REPLENISH_TEST_PG_URL not set (no PostgreSQL server)")
        db_url, drop = _pg_database(admin)
    mp = pytest.MonkeyPatch()
    mp.setenv("REPLENISH_HOME", str(home))
    mp.setenv("REPLENISH_DATABASE_URL", db_url)
    settings = load_settings(home=home, database_url=db_url)
    settings.ensure_home()
    engine = make_engine(db_url)
    migrate_store(engine)
    keys, runs, seconds = {}, {}, {}
    try:
        for tenant in GRIDS:
            t0 = time.monotonic()
            files = _files(tenant, root / f"in-{tenant}")
            for kind in SynthData.INGEST_ORDER:  # ordinary files, master data first
                r = ingest(kind, files[kind], tenant=tenant, engine=engine, settings=settings)
                assert r.status in ("stored", "partial"), (tenant, kind, r.status, r.message)
            update_profile(engine, tenant, train=_merge(TINY, WINDOWS[tenant]))
            with quiet():
                run = run_cycle(tenant, train=True, settings=settings, engine=engine, promote_first=True)
            assert run.status == "succeeded", (tenant, run.error)
            runs[tenant], seconds[tenant] = run, time.monotonic() - t0
            with session_scope(engine) as s:
                keys[tenant] = access.create_key(s, tenant, ["viewer"], actor="test")[1]
        print(f"\n[{request.param}] ingest + cycle per tenant: "
              + ", ".join(f"{t} {s:.0f} s" for t, s in seconds.items()))
        yield Cycled(home=home, db_url=db_url, settings=settings, engine=engine, keys=keys, runs=runs,
                     seconds=seconds)
    finally:
        engine.dispose()
        mp.undo()
        if drop is not None:
            drop()


@pytest.fixture
def env(cycled, monkeypatch):
    """This test's REPLENISH_HOME / database are the module's."""
    monkeypatch.setenv("REPLENISH_HOME", str(cycled.home))
    monkeypatch.setenv("REPLENISH_DATABASE_URL", cycled.db_url)
    return cycled


@pytest.fixture
def client(env):
    from fastapi.testclient import TestClient

    from serving.api.main import build_decision_app

    with TestClient(build_decision_app(env.settings, forecast_check_interval_s=0)) as c:
        yield c


def _units(engine, tenant: str) -> list[str]:
    import sqlalchemy as sa

    from features.store._db import session_scope
    from features.store._schema import PlanningUnit

    with session_scope(engine) as s:
        rows = s.execute(sa.select(PlanningUnit.sku_id, PlanningUnit.location_id, PlanningUnit.channel_id)
                         .where(PlanningUnit.tenant_id == tenant)).all()
    return sorted("|".join(r) for r in rows)


def _stored(env, tenant: str, units: list[str]) -> pl.DataFrame:
    from features.forecasts import read_forecasts

    run_id = env.runs[tenant].stage("reconcile").outputs["reconciled_run"]
    return read_forecasts(tenant, "reconciled", run_id, units=units, facts_dir=env.settings.facts_dir)


def _post(client, key: str, path: str, body: dict):
    return client.post(path, json=body, headers={"X-API-Key": key})


def _get(client, key: str, path: str, **params):
    return client.get(path, params=params, headers={"X-API-Key": key})


def test_each_tenant_is_trained_forecast_on_its_grid_and_planned_with_named_evidence(env):
    from features.forecasts import latest_forecast_run
    from features.store._db import session_scope
    from workflow.evidence import get as get_evidence
    from workflow.lifecycle import list_recommendations

    for tenant, grid in GRIDS.items():
        run = env.runs[tenant]
        assert [s.stage for s in run.stages] == ["train", "forecast", "reconcile", "plan", "propose"]
        version = run.stage("train").outputs["model_version"]
        reconciled = latest_forecast_run(tenant, "reconciled", facts_dir=env.settings.facts_dir)
        assert reconciled.freq == grid and reconciled.model_version == version, (tenant, reconciled)
        assert reconciled.method and reconciled.model_name == f"{tenant}-tft"
        units = len(_units(env.engine, tenant))
        assert run.stage("reconcile").counts["nodes"] > units, (tenant, run.stage("reconcile").counts)
        coherence = run.stage("reconcile").counts["coherence"]
        assert coherence["max_rel"] < 1e-6, (tenant, coherence)
        with session_scope(env.engine) as s:
            recs = list_recommendations(s, tenant, limit=10_000)
            assert recs, tenant
            bodies = [get_evidence(s, tenant, r.evidence_sha256).body for r in recs[:20]]
        assert len(recs) == run.stage("propose").counts["total"]
        for body in bodies:
            assert body["model_version"] == version, (tenant, body.get("model_version"))
            assert body["reconciliation_method"] == reconciled.method
            assert body["plan_run"] == run.run_id and body["data_watermark"] == reconciled.data_watermark
    print("\nreconciliation: " + ", ".join(
        f"{t} {env.runs[t].stage('reconcile').outputs['reconciliation_method']} "
        f"({env.runs[t].stage('reconcile').counts['nodes']} nodes)" for t in GRIDS))
    print("cycle stage seconds: " + "; ".join(
        f"{t}: " + ", ".join(f"{s.stage} {s.seconds:.1f}" for s in env.runs[t].stages) for t in GRIDS))


def test_forecasts_over_http_equal_the_stored_ones_and_differ_between_tenants(env, client):
    answers = {}
    for tenant in GRIDS:
        units = _units(env.engine, tenant)[:5]
        r = _post(client, env.keys[tenant], "/v1/forecasts", {"units": units})
        assert r.status_code == 200, (tenant, r.text)
        body = r.json()
        assert body["tenant"] == tenant and body["freq"] == GRIDS[tenant]
        stored = _stored(env, tenant, units)
        assert body["run_id"] == env.runs[tenant].stage("reconcile").outputs["reconciled_run"]
        assert sorted(f["unit"] for f in body["forecasts"]) == units
        for f in body["forecasts"]:
            rows = stored.filter(pl.col("unique_id") == f["unit"]).sort("horizon")
            assert f["dates"] == [d.isoformat() for d in rows["date"]], (tenant, f["unit"])
            for q, values in f["quantiles"].items():
                assert values == pytest.approx(rows[q].to_list(), rel=1e-3, abs=1e-3), (tenant, f["unit"], q)
        answers[tenant] = body
    # The same unit id in the two synthetic tenants (the same synth layout): different data, different answer.
    shared = sorted(set(_units(env.engine, "daily")) & set(_units(env.engine, "weekly")))[0]
    daily = _post(client, env.keys["daily"], "/v1/forecasts", {"units": [shared]}).json()
    weekly = _post(client, env.keys["weekly"], "/v1/forecasts", {"units": [shared]}).json()
    assert daily["forecasts"][0]["quantiles"]["p50"] != weekly["forecasts"][0]["quantiles"]["p50"]
    assert daily["forecasts"][0]["dates"] != weekly["forecasts"][0]["dates"]
    assert len({a["run_id"] for a in answers.values()}) == 3


def test_a_tenants_key_never_reads_another_tenants_data(env, client):
    from features.store._db import session_scope
    from workflow.lifecycle import list_recommendations

    theirs = _units(env.engine, "stallion")[:2]  # Stallion's units exist in no synthetic tenant
    assert not set(theirs) & set(_units(env.engine, "daily"))
    key = env.keys["daily"]

    r = _post(client, key, "/v1/forecasts", {"units": theirs})
    assert r.status_code == 404 and "quantiles" not in r.text, r.text
    one = _get(client, key, f"/v1/forecasts/{theirs[0]}")
    assert one.status_code == 404, one.text
    run = _get(client, key, "/v1/forecasts/run").json()
    assert run["tenant"] == "daily" and run["run_id"] == env.runs["daily"].run_id

    points = ["|".join(u.split("|")[:2]) for u in theirs]
    wi = _post(client, key, "/v1/plans/what-if", {"units": points, "fill_target": 0.9})
    assert wi.status_code == 404, wi.text
    own_point = "|".join(_units(env.engine, "daily")[0].split("|")[:2])
    mine = _post(client, key, "/v1/plans/what-if", {"units": [own_point], "fill_target": 0.9})
    assert mine.status_code == 200, mine.text
    assert mine.json()["tenant"] == "daily" and mine.json()["forecast_run"] == run["run_id"]

    latest = _get(client, key, "/v1/plans/latest").json()
    assert latest["run"]["tenant_id"] == "daily" and latest["run"]["run_id"] == env.runs["daily"].run_id
    skus = {r["sku_id"] for r in latest.get("recommendations", [])}
    assert not skus & {u.split("|")[0] for u in theirs}

    risk = _get(client, key, "/v1/risk", limit=5000)
    assert risk.status_code == 200, risk.text
    assert risk.json()["tenant"] == "daily" and risk.json()["run_id"] == env.runs["daily"].run_id
    stallion_locations = {u.split("|")[1] for u in _units(env.engine, "stallion")}
    assert not {i["location_id"] for i in risk.json()["items"]} & stallion_locations
    by_sku = _get(client, key, "/v1/risk", sku_id=theirs[0].split("|")[0])
    assert by_sku.status_code == 200 and by_sku.json()["items"] == []

    other_run = env.runs["stallion"].run_id
    assert _get(client, key, f"/v1/cycles/{other_run}").status_code == 404
    listed = _get(client, key, "/v1/cycles").json()
    ids = {c["run_id"] for c in (listed["runs"] if isinstance(listed, dict) else listed)}
    assert env.runs["daily"].run_id in ids and other_run not in ids
    with session_scope(env.engine) as s:
        rec = list_recommendations(s, "stallion", limit=1)[0]
    assert _get(client, key, f"/v1/recommendations/{rec.id}").status_code == 404
    assert rec.id not in {r["id"] for r in _get(client, key, "/v1/recommendations", limit=1000).json()}


def test_newer_sales_make_only_that_tenants_forecasts_stale_until_its_cycle_runs(env, client, tmp_path):
    """Runs last in the module: it gives the weekly tenant a new forecast run."""
    from features.forecasts import sales_watermark
    from features.ingest import ingest
    from serving.cycle import run_cycle
    from training.quiet import quiet

    unit = _units(env.engine, "weekly")[0]
    before = _post(client, env.keys["weekly"], "/v1/forecasts", {"units": [unit]})
    assert before.status_code == 200, before.text
    nxt = min(before.json()["forecasts"][0]["dates"])  # the period after the last sales date
    sku, loc, ch = unit.split("|")
    path = tmp_path / "new-sales.csv"
    path.write_text(f"sku_id,location_id,channel_id,date,qty\n{sku},{loc},{ch},{nxt},5\n")
    r = ingest("sales", path, tenant="weekly", engine=env.engine, settings=env.settings)
    assert r.exit_code == 0, r.summary()

    stale = _post(client, env.keys["weekly"], "/v1/forecasts", {"units": [unit]})
    assert stale.status_code == 409 and "replenish cycle --tenant weekly" in stale.text, stale.text
    assert "quantiles" not in stale.text
    other = _post(client, env.keys["daily"], "/v1/forecasts", {"units": [_units(env.engine, "daily")[0]]})
    assert other.status_code == 200, other.text  # another tenant's ingest leaves daily current

    with quiet():
        run = run_cycle("weekly", stages=["forecast", "reconcile"], settings=env.settings, engine=env.engine)
    assert run.status == "succeeded", run.error
    fresh = _post(client, env.keys["weekly"], "/v1/forecasts", {"units": [unit]})
    assert fresh.status_code == 200, fresh.text
    body = fresh.json()
    assert body["run_id"] == run.run_id != before.json()["run_id"]
    assert body["data_watermark"] == sales_watermark("weekly", facts_dir=env.settings.facts_dir)
    assert min(body["forecasts"][0]["dates"]) > nxt
