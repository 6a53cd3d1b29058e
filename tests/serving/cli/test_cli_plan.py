import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from planning._evidence import missing_evidence
from planning._store import load_run


def _url(engine):
    return engine.url.render_as_string(hide_password=False)


def test_replenish_plan_end_to_end_writes_the_store(engine):
    from serving.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "plan",
            "--synthetic",
            "80",
            "--periods",
            "30",
            "--seed",
            "4",
            "--tenant",
            "acme",
            "--database-url",
            _url(engine),
            "--json",
            "--propose",
            "--paths",
            "64",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    with engine.connect() as c:
        n_runs = c.execute(sa.text("select count(*) from plan_runs where tenant_id = 'acme'")).scalar_one()
        n_recs = c.execute(
            sa.text("select count(*) from plan_recommendations where tenant_id = 'acme'")
        ).scalar_one()
        n_exc = c.execute(
            sa.text("select count(*) from plan_exceptions where tenant_id = 'acme'")
        ).scalar_one()
        n_wf = c.execute(
            sa.text("select count(*) from wf_recommendations where tenant_id = 'acme'")
        ).scalar_one()
    assert n_runs == 1
    assert n_recs == summary["recommendations"] > 0
    assert n_exc == sum(summary["exceptions"].values()) > 0
    assert n_wf == summary["proposed_to_workflow"] == n_recs  # handed to the lifecycle
    stored = load_run(engine, "acme")
    recs = stored["recommendations"]
    assert stored["run"]["run_id"] == summary["run_id"]
    # the shipped policy: orders cross, each path draws its lead-time distribution from the posterior
    assert stored["run"]["params"]["crossing"] is True
    assert stored["run"]["params"]["lead_time_posterior"] is True
    for ev in recs["evidence"].to_list():
        assert missing_evidence(ev) == []
    assert recs["rule"].null_count() == 0 and recs["reason"].null_count() == 0
    routed = stored["exceptions"].filter(stored["exceptions"]["action"] == "route")
    assert routed.height > 0 and routed["route_queue"].null_count() == 0
    assert stored["po_drafts"].height == summary["po_drafts"]
    with pytest.raises(LookupError):
        load_run(engine, "someone-else")  # another tenant sees nothing


def test_malformed_rules_refused_before_anything_is_written(engine, tmp_path):
    from serving.cli import app

    bad = tmp_path / "routing.yaml"
    bad.write_text(
        "rules:\n  - name: x\n    when:\n      colour: {eq: red}\n    route: {queue: q, role: planner}\n"
    )
    res = CliRunner().invoke(
        app, ["plan", "--synthetic", "20", "--routing", str(bad), "--database-url", _url(engine)]
    )
    assert res.exit_code == 2
    assert "line 4" in res.output and "unknown field 'colour'" in res.output
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from plan_runs")).scalar_one() == 0


def test_plan_from_files_written_by_synth(engine, tmp_path):
    from features.synth import generate
    from serving.cli import app

    generate(40, 30, freq="W", seed=2).write(tmp_path / "data", fmt="csv")
    res = CliRunner().invoke(
        app,
        [
            "plan",
            "--data",
            str(tmp_path / "data"),
            "--tenant",
            "files",
            "--database-url",
            _url(engine),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["units"] == 20 and summary["recommendations"] > 0  # 40 series = 20 SKU x store, 2 channels
    missing = CliRunner().invoke(app, ["plan", "--data", str(tmp_path), "--database-url", _url(engine)])
    assert missing.exit_code == 2 and "missing sales.csv or sales.parquet" in missing.output


def test_identity_problems_from_the_ingest_quarantine_become_exceptions(engine):
    from features.store._db import session_scope
    from features.store._schema import IngestBatch, QuarantineRow
    from features.store._tenants import Tenant
    from serving.cli import app

    with session_scope(engine) as s:
        s.add(Tenant(tenant_id="q1", name="q1"))
        s.flush()
        s.add(
            IngestBatch(
                batch_id="b1",
                tenant_id="q1",
                kind="sales",
                file_name="sales.csv",
                content_hash="x" * 64,
                status="partial",
            )
        )
        s.flush()
        s.add(
            QuarantineRow(
                tenant_id="q1",
                batch_id="b1",
                kind="sales",
                file_name="sales.csv",
                row_number=7,
                field="sku_id",
                value="SKU_??",
                expected="a known SKU id",
            )
        )
        for row, (field, value, expected) in enumerate(
            [
                ("qty", "-3", "a number >= 0"),
                ("sku_id", "SKU_??", "a known SKU id"),  # the same unknown SKU again: reported once
                ("sku_id", "SKU_001", "a known SKU id"),  # known once the synthetic SKUs are ingested
            ],
            start=8,
        ):
            s.add(
                QuarantineRow(
                    tenant_id="q1",
                    batch_id="b1",
                    kind="sales",
                    file_name="sales.csv",
                    row_number=row,
                    field=field,
                    value=value,
                    expected=expected,
                )
            )
    res = CliRunner().invoke(
        app,
        ["plan", "--synthetic", "20", "--periods", "20", "--tenant", "q1", "--database-url", _url(engine)],
    )
    assert res.exit_code == 0, res.output
    with engine.connect() as c:
        msgs = c.execute(
            sa.text(
                "select message, rule from plan_exceptions "
                "where tenant_id = 'q1' and exception_type = 'identity'"
            )
        ).all()
    ingest = [m for m in msgs if m[0].startswith("ingest:")]
    # The unknown SKU once (not per row), not the bad quantity, not the SKU that is known by now.
    assert len(ingest) == 1, msgs
    assert (
        "sku_id='SKU_??' rejected in 2 row(s) (first: sales.csv row 7), expected a known SKU id"
        in ingest[0][0]
    )
    assert ingest[0][1] == "policy_exception"  # routed to master data by the shipped rules


def test_plan_a_tenant_from_its_ingested_data(engine, tmp_path, monkeypatch):
    from features.synth import SynthData, generate
    from serving.cli import app

    monkeypatch.setenv("REPLENISH_DATABASE_URL", _url(engine))
    data = generate(20, 20, freq="W", seed=5)
    paths = data.write(tmp_path / "files", fmt="csv")
    runner = CliRunner()
    for kind in SynthData.INGEST_ORDER:
        res = runner.invoke(app, ["ingest", kind, str(paths[kind]), "--tenant", "stored"])
        assert res.exit_code == 0, (kind, res.output)
    res = runner.invoke(app, ["plan", "--tenant", "stored", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["units"] == 10 and summary["recommendations"] > 0
    stored = load_run(engine, "stored")
    assert stored["recommendations"].height == summary["recommendations"]
    empty = runner.invoke(app, ["plan", "--tenant", "nobody"])
    assert empty.exit_code == 2 and "has no sales" in empty.output


def test_open_customer_commitments_reduce_the_position():
    import polars as pl

    from features.synth import generate
    from planning._inputs import inputs_from_frames

    tables = generate(20, 20, freq="W", seed=5).tables()
    base = inputs_from_frames(**tables)
    sku, loc = base.units.row(0, named=True)["sku_id"], base.units.row(0, named=True)["location_id"]
    due = base.as_of
    commitments = pl.DataFrame(
        {
            "commitment_id": ["c1", "c2", "c3"],
            "sku_id": [sku, sku, sku],
            "location_id": [loc, loc, loc],
            "qty": [5.0, 7.0, 100.0],
            "due_date": [due, due, due.replace(year=due.year + 5)],
            "status": ["open", "open", "open"],
        }
    )
    with_c = inputs_from_frames(**tables, customer_commitments=commitments)
    row = with_c.units.filter((pl.col("sku_id") == sku) & (pl.col("location_id") == loc))
    assert row["committed"][0] == 12.0  # the one due after the horizon does not count yet
    assert with_c.units["committed"].sum() == 12.0


def test_same_synthetic_seed_twice_gives_identical_recommendations(engine):
    from serving.cli import app

    runner = CliRunner()
    for tenant in ("first", "second"):
        res = runner.invoke(
            app,
            ["plan", "--synthetic", "40", "--seed", "3", "--tenant", tenant, "--database-url", _url(engine)],
        )
        assert res.exit_code == 0, res.output
    a, b = (load_run(engine, t) for t in ("first", "second"))
    drop = {"id", "run_id", "tenant_id", "created_at", "evidence", "exception_key"}  # ids, stamps, tenant
    for key in ("recommendations", "exceptions", "po_drafts"):
        cols = sorted(set(a[key].columns) - drop)
        fa, fb = (f[key].select(cols).sort(cols, nulls_last=True) for f in (a, b))
        assert fa.height > 0 and fa.equals(fb), key
    # the evidence is the same but for the data watermark, which names each tenant's own sales files
    ev = [
        sorted(
            json.dumps(
                {**e, "forecast": {**e["forecast"], "data_watermark": None}}, sort_keys=True, default=str
            )
            for e in f["recommendations"]["evidence"]
        )
        for f in (a, b)
    ]
    assert ev[0] == ev[1]
    assert a["run"]["params"]["crossing"] is True


def test_service_group_option_plans_group_targets_and_refuses_unknown_columns(engine):
    from serving.cli import app

    runner = CliRunner()
    base = ["plan", "--synthetic", "60", "--seed", "2", "--database-url", _url(engine), "--json"]
    res = runner.invoke(app, [*base, "--tenant", "grouped", "--service-group", "location_id"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["service_group"] == "location_id"
    assert summary["routed_recommendations"] + summary["auto_approved"] == summary["recommendations"]
    recs = load_run(engine, "grouped")["recommendations"]
    sims = [e["simulation"] for e in recs["evidence"].to_list()]
    assert sims and all(s["service_group"] for s in sims)
    assert all(0.8 - 1e-12 <= s["allocated_fill_target"] <= 0.998 for s in sims)
    assert len({s["allocated_fill_target"] for s in sims}) > 1  # allocated, not one target copied
    res = runner.invoke(app, [*base, "--tenant", "nobody", "--service-group", "buyer"])
    assert res.exit_code == 2
    assert "not a planning-unit column" in res.output
    with pytest.raises(LookupError):
        load_run(engine, "nobody")  # nothing stored for a refused run


def test_replenish_plan_runs_the_plan_stage_on_the_tenants_stored_forecasts(engine, tmp_path, monkeypatch):
    """The command is a caller of planning.plan_stage: it plans on the forecast run the stores hold."""

    import polars as pl

    from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts
    from features.settings import get_settings
    from features.synth import SynthData, generate
    from serving.cli import app

    monkeypatch.setenv("REPLENISH_DATABASE_URL", _url(engine))
    data = generate(20, 30, freq="W", seed=5)
    paths = data.write(tmp_path / "files", fmt="csv")
    runner = CliRunner()
    for kind in SynthData.INGEST_ORDER:
        res = runner.invoke(app, ["ingest", kind, str(paths[kind]), "--tenant", "fc"])
        assert res.exit_code == 0, (kind, res.output)
    first = runner.invoke(app, ["plan", "--tenant", "fc", "--json"])
    assert first.exit_code == 0, first.output
    boot = json.loads(first.output.strip().splitlines()[-1])
    assert boot["forecast_source"] == "baseline:bootstrap" and boot["forecast_run"] is None
    assert any("history bootstrap" in n for n in boot["notes"])
    last = data.sales["date"].max()
    rows = (
        data.sales.group_by("sku_id", "location_id", "channel_id")
        .agg(pl.col("qty").cast(pl.Float64).mean().alias("m"))
        .join(pl.DataFrame({"horizon": [1, 2, 3, 4]}), how="cross")
        .with_columns(
            pl.concat_str("sku_id", "location_id", "channel_id", separator="|").alias("unique_id"),
            pl.lit("bottom").alias("level"),
            (pl.lit(last) + pl.duration(days=7 * pl.col("horizon"))).cast(pl.Date).alias("date"),
            pl.lit("model:fc-tft").alias("source"),
            pl.lit("2").alias("model_version"),
            pl.lit(False).alias("cold_start"),
            *[(pl.col("m") * f).alias(c) for c, f in (("p10", 0.5), ("p50", 1.0), ("p90", 1.6))],
        )
    )
    facts = get_settings().facts_dir
    meta = ForecastRunMeta(
        run_id="fc-run-1",
        tenant="fc",
        stage="base",
        freq="W",
        horizon=4,
        levels=(0.1, 0.5, 0.9),
        data_watermark=sales_watermark("fc", facts_dir=facts),
        model_name="fc-tft",
        model_version="2",
    )
    write_forecasts("fc", rows, meta, facts_dir=facts)
    res = runner.invoke(app, ["plan", "--tenant", "fc", "--json", "--run-id", "plan-1"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["run_id"] == "plan-1" and summary["forecast_run"] == "fc-run-1"
    assert summary["forecast_source"] == "model:fc-tft" and summary["period_days"] == 7.0
    stored = load_run(engine, "fc", "plan-1")
    assert stored["run"]["model_version"] == "2"
    assert {e["forecast"]["run_id"] for e in stored["recommendations"]["evidence"]} == {"fc-run-1"}
    missing = runner.invoke(app, ["plan", "--tenant", "fc", "--forecast-run", "nope"])
    assert missing.exit_code == 2 and "no forecast run 'nope'" in missing.output


def test_synthetic_data_never_mixes_into_a_tenant_with_other_sales(engine):
    from serving.cli import app

    runner = CliRunner()
    base = ["plan", "--synthetic", "20", "--periods", "20", "--tenant", "mix", "--database-url", _url(engine)]
    assert runner.invoke(app, [*base, "--json"]).exit_code == 0
    again = runner.invoke(app, [*base, "--json"])  # the same files again: already ingested, planned again
    assert again.exit_code == 0, again.output
    other = runner.invoke(app, [*base, "--seed", "9"])
    assert other.exit_code == 2 and "already has other sales" in other.output
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from plan_runs where tenant_id = 'mix'")).scalar_one() == 2
