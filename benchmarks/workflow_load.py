"""Control-plane load on PostgreSQL over loopback: sustained state transitions/s with outbox writes.

Processes, all against one fresh database:

* ``--workers`` planners, each in a loop: planning hands over a plan of ``--batch`` recommendations
  (propose + route, 2 transitions each, one transaction per plan: ``lifecycle.propose_many``), then a planner
  decides each one in its own transaction (approve 80 %, override 10 %, reject 10 %; 1 transition, + 1 outbox
  row unless rejected);
* one dispatcher delivering the outbox to an in-process receiver that honours idempotency keys (1 transition
  ``-> sent`` per item; each claimed batch recorded in one transaction);
* one ERP consumer reading the event log by cursor and acknowledging each page of ``recommendation.sent``
  by idempotency key (1 transition ``-> acknowledged`` each; one transaction per page).

Latency is per transaction (all of them, and the single decisions on their own). The client CPU per
transition is printed too: on a shared machine the processes of one session get a fair share of the CPU
(Linux autogroup), so transitions/s = that share / CPU per transition; the CPU figure is what carries over.

Proposals are valued on the server from the tenant's stored supplier terms (one lookup per plan and per
override) and every decision passes the decision-rights checks (route role, approval limit, four-eyes).
Every transition also appends a hash-chained audit entry and an event under the tenant's journal lock. After
the timed window the outbox and acknowledgements are drained, then the consistency check: events = audit
entries = transitions counted by the clients; outbox rows = approvals + overrides; every outbox item delivered
exactly once (zero lost, zero duplicated); audit chains verify; event sequences gapless.

Reference, in the same run: the issue's target (>= 500 transitions/s, p99 <= 100 ms) and the bare
compare-and-set UPDATE (no audit, event or outbox) on the same server, to show what the journal costs.

    flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/workflow_load.py

The PostgreSQL server is ``$REPLENISH_BENCH_PG_URL`` or ``$REPLENISH_TEST_PG_URL`` (default
postgresql://postgres:postgres@127.0.0.1:5432/postgres); a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402

TARGET_TPS, TARGET_P99_MS = 500.0, 100.0
N_SKUS = 500  # SKUs with stored supplier terms per tenant (the server values each proposal from them)
POLL_S = 0.1  # dispatcher and ERP consumer poll interval when idle (Dispatcher.run defaults to 0.5 s)


def _admin_url() -> str:
    url = (
        os.environ.get("REPLENISH_BENCH_PG_URL")
        or os.environ.get("REPLENISH_TEST_PG_URL")
        or "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
    )
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _fresh_db(admin: str) -> tuple[str, str]:
    name = f"bench_wf_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False), name


def _drop_db(admin: str, name: str) -> None:
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def _planner(url, tenant, key, t_start, t_end, seed, q, batch):
    from features.store._db import make_engine, session_scope
    from workflow import access, lifecycle
    from workflow.errors import VersionConflict
    from workflow.schemas import ApproveIn, OverrideIn, RecommendationIn, RejectIn, Route

    engine = make_engine(url, pool_size=1, max_overflow=0)
    with session_scope(engine) as s:
        p = access.authenticate(s, key)
    rng = np.random.default_rng(seed)
    lat_plan, lat_decide, c = [], [], Counter()
    route = Route(queue="buyers", role="planner", rule="value>100", reason="bench")
    time.sleep(max(0.0, t_start - time.time()))
    i = 0
    while time.time() < t_end:
        recs = []
        for _ in range(batch):
            i += 1
            recs.append(
                RecommendationIn(
                    kind="purchase_order",
                    sku_id=f"SKU-{i % N_SKUS}",  # valued on the server from the seeded supplier terms
                    location_id="DC-1",
                    supplier_id="SUP-1",
                    quantity=float(rng.integers(1, 200)),
                    route=route,
                    evidence={"model_version": "tft:1", "quantiles": {"p50": 10.0}},
                )
            )
        t0 = time.perf_counter()
        with session_scope(engine) as s:  # planning hands over a plan: propose + route, one transaction
            out = lifecycle.propose_many(s, tenant, recs, actor="planning:bench")
        lat_plan.append(time.perf_counter() - t0)
        c["transitions"] += 2 * len(out)
        for r in out:  # planners decide one at a time: one transaction each
            u = rng.random()
            t0 = time.perf_counter()
            try:
                with session_scope(engine) as s:
                    if u < 0.8:
                        lifecycle.approve(s, p, r.id, ApproveIn(version=r.version))
                        c["approvals"] += 1
                    elif u < 0.9:
                        lifecycle.override(
                            s,
                            p,
                            r.id,
                            OverrideIn(version=r.version, quantity=r.quantity + 1, reason_code="bench"),
                        )
                        c["overrides"] += 1
                    else:
                        lifecycle.reject(s, p, r.id, RejectIn(version=r.version, reason_code="bench"))
                        c["rejections"] += 1
                c["transitions"] += 1
            except VersionConflict:
                c["conflicts"] += 1
            lat_decide.append(time.perf_counter() - t0)
            if time.time() >= t_end:
                break
    engine.dispose()
    q.put(
        (
            "planner",
            lat_plan + lat_decide,
            dict(c),
            {"decide": lat_decide, "plan": lat_plan, "cpu": time.process_time()},
        )
    )


class _Receiver:
    """In-process receiving system honouring idempotency keys (records each key once)."""

    def __init__(self):
        self.processed: Counter = Counter()
        self.duplicates = 0

    def send_batch(self, items):
        from workflow.adapters import Delivery

        out = []
        for it in items:
            if it.idempotency_key in self.processed:
                self.duplicates += 1
            else:
                self.processed[it.idempotency_key] += 1
            out.append(Delivery(True, False, "ok", f"ERP-{it.id}"))
        return out


def _dispatch(url, t_start, t_end, q, drain=False):
    from features.store._db import make_engine
    from workflow.dispatcher import Dispatcher

    engine = make_engine(url, pool_size=1, max_overflow=0)
    recv = _Receiver()
    d = Dispatcher(engine, recv, rng=np.random.default_rng(0), batch_size=50, lease_s=60)
    time.sleep(max(0.0, t_start - time.time()))
    sent = 0
    while drain or time.time() < t_end:
        st = d.run_once()
        sent += st.delivered
        if st.claimed == 0:
            if drain:
                break
            time.sleep(POLL_S)
    engine.dispose()
    result = (
        "dispatcher",
        [],
        {"transitions": sent, "sent": sent},
        {"processed": dict(recv.processed), "duplicates": recv.duplicates, "cpu": time.process_time()},
    )
    if q is None:
        return result
    q.put(result)


def _erp(url, tenants, t_start, t_end, q, drain=False):
    from features.store._db import make_engine, session_scope
    from workflow import events, outbox
    from workflow.schemas import AckIn

    engine = make_engine(url, pool_size=1, max_overflow=0)
    lat, c = [], Counter()
    ack = AckIn(status="accepted")
    time.sleep(max(0.0, t_start - time.time()))
    while True:
        busy = False
        for t in tenants:
            with session_scope(engine) as s:
                cur = events.get_cursor(s, t, "erp")
                page = events.read(
                    s, t, after=cur, limit=50, topics=["replenishment"], types=["recommendation.sent"]
                )
            keys = [e.payload["idempotency_key"] for e in page.events]
            if keys:  # the ERP acknowledges what it imported, one batch per page
                t0 = time.perf_counter()
                with session_scope(engine) as s:
                    res = outbox.acknowledge_many(s, t, [(k, ack) for k in keys], actor="erp")
                lat.append(time.perf_counter() - t0)
                n_new = sum(1 for _, dup in res if not dup)
                c["transitions"] += n_new
                c["acks"] += n_new
            if page.events:
                busy = True
                with session_scope(engine) as s:
                    events.commit_cursor(s, t, "erp", page.next_cursor)
        if not drain and time.time() >= t_end:
            break
        if drain and not busy:
            break
        if not busy:
            time.sleep(POLL_S)
    engine.dispose()
    result = ("erp", lat, dict(c), {"ack": lat, "cpu": time.process_time()})
    if q is None:
        return result
    q.put(result)


def _bare_reference(url, n_rows, seconds, workers):
    """Bare compare-and-set UPDATEs (no journal, no outbox) from ``workers`` processes."""
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE bare (id int primary key, state text, version int)"))
        c.execute(
            sa.text("INSERT INTO bare SELECT g, 'routed', 1 FROM generate_series(1, :n) g"), {"n": n_rows}
        )
    eng.dispose()
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    t_start = time.time() + 1.0
    procs = [
        ctx.Process(target=_bare_worker, args=(url, w, workers, n_rows, t_start, t_start + seconds, q))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lat = [x for r in res for x in r[0]]
    n = sum(r[1] for r in res)
    return n / seconds, float(np.percentile(lat, 50) * 1e3), float(np.percentile(lat, 99) * 1e3)


def _bare_worker(url, w, workers, n_rows, t_start, t_end, q):
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=1)
    lat, n, i = [], 0, w
    time.sleep(max(0.0, t_start - time.time()))
    with eng.connect() as c:
        while time.time() < t_end:
            rid = i % n_rows + 1
            i += workers
            t0 = time.perf_counter()
            with c.begin():
                v = c.execute(sa.text("SELECT version FROM bare WHERE id = :i"), {"i": rid}).scalar()
                c.execute(
                    sa.text("UPDATE bare SET version = version + 1 WHERE id = :i AND version = :v"),
                    {"i": rid, "v": v},
                )
            lat.append(time.perf_counter() - t0)
            n += 1
    eng.dispose()
    q.put((lat, n))


def _seed_terms(s, tenant: str) -> None:
    """The tenant's catalogue as ingest stores it: SKUs, one supplier, its unit cost per SKU."""
    from features.store._schema import Sku, Supplier, SupplierTerm

    s.add(Supplier(tenant_id=tenant, supplier_id="SUP-1"))
    s.add_all([Sku(tenant_id=tenant, sku_id=f"SKU-{k}") for k in range(N_SKUS)])
    s.flush()
    s.add_all(
        [
            SupplierTerm(
                tenant_id=tenant, supplier_id="SUP-1", sku_id=f"SKU-{k}", unit_cost=2.0, moq=0, pack_size=1,
                promised_lead_time_days=14,
            )
            for k in range(N_SKUS)
        ]
    )


def run_once(admin: str, workers: int, n_tenants: int, seconds: float, batch: int) -> dict:
    from features.store._db import make_engine, session_scope
    from serving.migrations import migrate_store
    from workflow import access, audit, outbox
    from workflow._models import AuditEntry, Event, OutboxItem

    url, name = _fresh_db(admin)
    try:
        engine = make_engine(url)
        migrate_store(engine)
        tenants = [f"t{i}" for i in range(n_tenants)]
        keys = []
        with session_scope(engine) as s:
            for t in tenants:
                access.ensure_tenant(s, t)
                keys.append(access.create_key(s, t, ["admin"], actor="bench")[1])
                _seed_terms(s, t)
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        t_start = time.time() + 2.0
        t_end = t_start + seconds
        procs = [
            ctx.Process(
                target=_planner,
                args=(url, tenants[w % n_tenants], keys[w % n_tenants], t_start, t_end, 1000 + w, q, batch),
            )
            for w in range(workers)
        ]
        procs.append(ctx.Process(target=_dispatch, args=(url, t_start, t_end, q)))
        procs.append(ctx.Process(target=_erp, args=(url, tenants, t_start, t_end, q)))
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for p in procs:
            p.start()
        results = [q.get() for _ in procs]
        for p in procs:
            p.join()
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        # drain (not timed): deliver and acknowledge what the window left behind
        drained = [_dispatch(url, 0, 0, None, drain=True), _erp(url, tenants, 0, 0, None, drain=True)]
        window = Counter()
        lat, lat_decide, lat_plan, lat_ack = [], [], [], []
        processed, duplicates = Counter(), 0
        cpu_by_role = Counter()
        for kind, la, c, extra in results:
            cpu_by_role[kind] += extra.get("cpu", 0.0)
            window.update(c)
            if kind != "dispatcher":
                lat.extend(la)
            lat_decide.extend(extra.get("decide", []))
            lat_plan.extend(extra.get("plan", []))
            lat_ack.extend(extra.get("ack", []))
            processed.update(extra.get("processed", {}))
            duplicates += extra.get("duplicates", 0)
        total = Counter(window)
        for _, _, c, extra in drained:
            total.update(c)
            processed.update(extra.get("processed", {}))
            duplicates += extra.get("duplicates", 0)
        with session_scope(engine) as s:
            n_events = s.scalar(
                sa.select(sa.func.count()).select_from(Event).where(Event.topic == "replenishment")
            )
            n_audit_rec = s.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.entity_type == "recommendation")
            )
            n_outbox = s.scalar(sa.select(sa.func.count()).select_from(OutboxItem))
            counts = outbox.counts(s)
            chains_ok = all(audit.verify(s, t).ok for t in tenants)
            gapless = True
            for t in tenants:
                seqs = s.scalars(sa.select(Event.seq).where(Event.tenant_id == t).order_by(Event.seq)).all()
                gapless &= list(seqs) == list(range(1, len(seqs) + 1))
        engine.dispose()
        decisions_out = total["approvals"] + total["overrides"]
        lost = n_outbox - len(processed)
        dup_processed = sum(1 for v in processed.values() if v != 1)
        inconsistencies = (
            int(n_events != total["transitions"])
            + int(n_audit_rec != total["transitions"])
            + int(n_outbox != decisions_out)
            + int(counts["pending"] != 0)
            + int(counts["dead"] != 0)
            + abs(lost)
            + dup_processed
            + int(not chains_ok)
            + int(not gapless)
        )
        return {
            "tps": window["transitions"] / seconds,
            "client_cpu_ms_per_transition": 1e3 * client_cpu_s / max(window["transitions"], 1),
            "cpu_s_by_role": {k: round(v, 2) for k, v in cpu_by_role.items()},
            "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3),
            "decide_p50_ms": float(np.percentile(lat_decide, 50) * 1e3),
            "decide_p99_ms": float(np.percentile(lat_decide, 99) * 1e3),
            "plan_p99_ms": float(np.percentile(lat_plan, 99) * 1e3),
            "ack_page_p99_ms": float(np.percentile(lat_ack, 99) * 1e3) if lat_ack else 0.0,
            "transitions": total["transitions"],
            "events": n_events,
            "audit_entries": n_audit_rec,
            "outbox": n_outbox,
            "approvals_and_overrides": decisions_out,
            "delivered_unique": len(processed),
            "redelivered_and_suppressed": duplicates,
            "processed_twice": dup_processed,
            "lost": lost,
            "conflicts": total["conflicts"],
            "chains_ok": chains_ok,
            "gapless": gapless,
            "inconsistencies": inconsistencies,
        }
    finally:
        _drop_db(admin, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--tenants", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--batch", type=int, default=10, help="Recommendations per proposed plan (one transaction)."
    )
    args = ap.parse_args()
    admin = _admin_url()
    runs = []
    for i in range(args.runs):
        r = run_once(admin, args.workers, args.tenants, args.seconds, args.batch)
        runs.append(r)
        print(
            f"run {i + 1}: {r['tps']:.0f} transitions/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
            f"(single decisions: p50 {r['decide_p50_ms']:.1f}, p99 {r['decide_p99_ms']:.1f} ms; plans of "
            f"{args.batch}: p99 {r['plan_p99_ms']:.1f} ms; ack pages: p99 {r['ack_page_p99_ms']:.1f} ms) | "
            f"transitions {r['transitions']} events {r['events']} audit {r['audit_entries']} | outbox "
            f"{r['outbox']} = approvals+overrides {r['approvals_and_overrides']}, delivered once "
            f"{r['delivered_unique']}, lost {r['lost']}, processed twice {r['processed_twice']} | "
            f"chains ok {r['chains_ok']}, gapless {r['gapless']} | inconsistencies {r['inconsistencies']} | "
            f"client CPU {r['client_cpu_ms_per_transition']:.2f} ms/transition, "
            f"load avg {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    url, name = _fresh_db(admin)
    try:
        ref_tps, ref_p50, ref_p99 = _bare_reference(url, 10_000, args.seconds, args.workers)
    finally:
        _drop_db(admin, name)
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("tps", "p50_ms", "p99_ms", "decide_p50_ms", "decide_p99_ms")
    }
    incons = sum(r["inconsistencies"] for r in runs)
    print(
        f"reference: target >= {TARGET_TPS:.0f} transitions/s with p99 <= {TARGET_P99_MS:.0f} ms; "
        f"bare CAS UPDATE "
        f"(no audit/event/outbox, {args.workers} processes): {ref_tps:.0f}/s, p50 {ref_p50:.1f} ms, "
        f"p99 {ref_p99:.1f} ms"
    )
    print(
        f"median of {args.runs}: {med['tps']:.0f} transitions/s ({med['tps'] / TARGET_TPS:.2f}x target, "
        f"{med['tps'] / ref_tps:.2f}x bare CAS), p50 {med['p50_ms']:.1f} ms, p99 {med['p99_ms']:.1f} ms "
        f"over all "
        f"transactions (single decisions p50 {med['decide_p50_ms']:.1f}, p99 {med['decide_p99_ms']:.1f} ms), "
        f"inconsistencies {incons}"
    )
    print(
        json.dumps(
            {
                "bench": "workflow_load",
                "backend": "postgresql",
                "workers": args.workers,
                "tenants": args.tenants,
                "seconds": args.seconds,
                "runs": args.runs,
                "transitions_per_s": round(med["tps"], 1),
                "p50_ms": round(med["p50_ms"], 2),
                "p99_ms": round(med["p99_ms"], 2),
                "decide_p50_ms": round(med["decide_p50_ms"], 2),
                "decide_p99_ms": round(med["decide_p99_ms"], 2),
                "plan_batch": args.batch,
                "target_tps": TARGET_TPS,
                "target_p99_ms": TARGET_P99_MS,
                "ref_bare_cas_per_s": round(ref_tps, 1),
                "ref_bare_cas_p99_ms": round(ref_p99, 2),
                "ratio_vs_target": round(med["tps"] / TARGET_TPS, 2),
                "ratio_vs_bare_cas": round(med["tps"] / ref_tps, 3),
                "inconsistencies": incons,
                "meets_target": bool(
                    med["tps"] >= TARGET_TPS and med["p99_ms"] <= TARGET_P99_MS and incons == 0
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
