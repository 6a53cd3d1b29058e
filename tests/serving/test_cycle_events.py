"""Ingest -> cycle puts every step on the tenant's event log, in order, read by a consumer with a cursor."""

from __future__ import annotations

from tests.serving import _cycle_data
from tests.serving._cycle_data import TENANT, store_forecast

settings = _cycle_data.settings


def test_ingest_then_cycle_emits_in_order_and_a_cursor_reads_each_once(settings, engine, tmp_path):
    from features.store._db import session_scope
    from features.synth import SynthData, generate
    from serving.cycle import run_cycle
    from serving.ingest import ingest_and_announce
    from workflow import events

    data = generate(12, 60, freq="W", seed=7)
    paths = data.write(tmp_path / "files", fmt="parquet")
    for kind in SynthData.INGEST_ORDER:
        ingest_and_announce(kind, paths[kind], tenant=TENANT, engine=engine, settings=settings)
    # the same sales file again stores nothing new: no second announcement
    again = ingest_and_announce("sales", paths["sales"], tenant=TENANT, engine=engine, settings=settings)
    assert again.rows_stored == 0
    store_forecast(settings, data)
    run = run_cycle(TENANT, stages=["plan", "propose"], settings=settings, engine=engine)
    assert run.status == "succeeded", run.error

    # a consumer reads pages of 7 after its committed cursor until nothing is left
    seen = []
    with session_scope(engine) as s:
        while True:
            page = events.read(s, TENANT, after=events.get_cursor(s, TENANT, "test-consumer"), limit=7)
            if not page.events:
                break
            seen.extend(page.events)
            events.commit_cursor(s, TENANT, "test-consumer", page.next_cursor)
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))  # gapless, in order, each once
    types = [e.type for e in seen]
    ingested = [t for t in types if t.endswith(".ingested")]
    expected = [f"{k}.ingested" for k in SynthData.INGEST_ORDER if k in events.INGEST_TOPICS]
    assert ingested == expected
    i_plan, i_prop = types.index("plan.created"), types.index("plan.proposed")
    assert max(types.index(t) for t in expected) < i_plan < i_prop
    plan = seen[i_plan]
    assert plan.topic == "plan" and plan.key == run.run_id and plan.payload["forecast_run"] == "fc1"
    assert plan.payload["counts"]["recommendations"] == run.stage("plan").counts["recommendations"]
    sales = seen[types.index("sales.ingested")]
    assert sales.topic == "sales" and sales.payload["rows_stored"] == data.sales.height
    # the recommendations proposed by the cycle are on the log between the plan and its proposal event
    between = {e.topic for e in seen[i_plan + 1 : i_prop]}
    assert between <= {"replenishment", "exception"} and "replenishment" in between
