"""The whole cycle for one synthetic tenant: time and peak memory per stage.

A tenant of ``--units`` planning units (default 100,000) with ``--days`` of daily sales (default 730, two
years) is made by ``replenish synth``'s generator, written as Parquet files and ingested through the ordinary
``replenish ingest`` command (master data first). Then each stage of the cycle runs as its own process,
exactly as an operator would run it: ``replenish cycle --tenant bench --stage S`` for S in train (a capped
training budget, set in the tenant's profile), forecast, reconcile, plan, propose. Each process's peak
resident memory (the process and its children, sampled every 50 ms from /proc) and wall time are recorded.

Targets (issue 12): the whole cycle <= 15 min and <= 8 GB; forecast + reconcile + plan of the 100k units
<= 3 min. Ingest is reported beside the cycle, not inside it (it happens before a cycle).

Usage: ``flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/cycle.py [--units 100000] [--days 730]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("train", "forecast", "reconcile", "plan", "propose")
TENANT = "bench"


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (0 when it is gone)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        p = int(d.name)
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(p)
        rss[p] = int(fields.get("VmRSS", "0 kB").split()[0] or 0)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total / 1024.0


def run_measured(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; return wall seconds, peak tree RSS (MB), exit code and the last JSON line it printed."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=fh, text=True, cwd=ROOT)
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
                done.wait(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        out, _ = proc.communicate()
        done.set()
        th.join()
    seconds = time.perf_counter() - t0
    fh_text = out.strip().splitlines()
    last = None
    for line in reversed(fh_text):
        if line.startswith("{"):
            try:
                last = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    return {"seconds": seconds, "peak_mb": peak[0], "rc": proc.returncode, "result": last, "stdout": out}


def make_data(units: int, days: int, out: Path, seed: int) -> dict:
    """Generate the tenant's files (not timed as part of the cycle)."""
    from features.synth import generate

    t0 = time.perf_counter()
    data = generate(units, days, freq="D", seed=seed, intermittent_share=0.5)
    paths = data.write(out, fmt="parquet")
    return {
        "seconds": time.perf_counter() - t0,
        "rows": data.sales.height,
        "paths": paths,
        "order": data.INGEST_ORDER,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/replenish-cycle-bench"))
    ap.add_argument("--epochs", type=int, default=1, help="Training budget: epochs.")
    ap.add_argument("--batches", type=int, default=40, help="Training budget: batches per epoch.")
    ap.add_argument("--keep", action="store_true", help="Keep the work folder.")
    args = ap.parse_args()

    if args.work.exists():
        shutil.rmtree(args.work)
    files, home = args.work / "files", args.work / "home"
    files.mkdir(parents=True)
    env = {**os.environ, "REPLENISH_HOME": str(home), "RAY_AUTH_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    os.environ["REPLENISH_HOME"] = str(home)
    exe = str(Path(sys.executable).with_name("replenish"))

    print(f"cycle benchmark: {args.units:,} daily units x {args.days} days, tenant {TENANT!r}, home {home}")
    gen = make_data(args.units, args.days, files, args.seed)
    print(f"  generated {gen['rows']:,} sales rows in {gen['seconds']:.0f} s")

    ingest = {"seconds": 0.0, "peak_mb": 0.0}
    for kind in gen["order"]:
        r = run_measured(
            [exe, "ingest", kind, str(gen["paths"][kind]), "--tenant", TENANT],
            env,
            args.work / f"ingest-{kind}.log",
        )
        if r["rc"] not in (0, 1):
            sys.exit(f"ingest {kind} failed (exit {r['rc']}); see {args.work / f'ingest-{kind}.log'}")
        ingest["seconds"] += r["seconds"]
        ingest["peak_mb"] = max(ingest["peak_mb"], r["peak_mb"])
        print(f"  ingest {kind:<16s} {r['seconds']:7.1f} s  peak {r['peak_mb']:7.0f} MB")

    # The capped training budget is the tenant's own setting, as an operator would store it.
    from features.profile import update_profile
    from features.settings import get_settings
    from features.store import make_engine
    from serving.migrations import migrate_store

    engine = make_engine(get_settings().database_url)
    migrate_store(engine)
    update_profile(
        engine,
        TENANT,
        train={
            "fit": {
                "max_epochs": args.epochs,
                "batches_per_epoch": args.batches,
                "patience": 1,
                "refit": False,
                "progress": False,
            }
        },
    )
    engine.dispose()

    stages: dict[str, dict] = {}
    for stage in STAGES:
        cmd = [exe, "cycle", "--tenant", TENANT, "--stage", stage, "--json"]
        r = run_measured(cmd, env, args.work / f"cycle-{stage}.log")
        stages[stage] = {
            "seconds": round(r["seconds"], 1),
            "peak_mb": round(r["peak_mb"]),
            "rc": r["rc"],
            "result": r["result"],
        }
        print(f"  cycle {stage:<10s} {r['seconds']:7.1f} s  peak {r['peak_mb']:7.0f} MB  exit {r['rc']}")
        if r["rc"] != 0:
            print(f"  stage {stage} failed; see {args.work / f'cycle-{stage}.log'}")
            break

    total = sum(s["seconds"] for s in stages.values())
    peak = max((s["peak_mb"] for s in stages.values()), default=0)
    fast = sum(stages.get(s, {}).get("seconds", float("nan")) for s in ("forecast", "reconcile", "plan"))
    dominant = max(stages, key=lambda s: stages[s]["seconds"]) if stages else None
    ok = all(s["rc"] == 0 for s in stages.values()) and len(stages) == len(STAGES)
    print(
        f"cycle: {total:.0f} s in all (target <= 900 s: {total / 900:.2f} of it), peak {peak:,} MB "
        f"(target <= 8,192 MB: {peak / 8192:.2f}); forecast + reconcile + plan {fast:.0f} s "
        f"(target <= 180 s: {fast / 180:.2f}); dominant stage: {dominant}"
    )
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    print(
        json.dumps(
            {
                "units": args.units,
                "days": args.days,
                "sales_rows": gen["rows"],
                "completed": ok,
                "ingest_seconds": round(ingest["seconds"], 1),
                "ingest_peak_mb": round(ingest["peak_mb"]),
                "stages": {k: {"seconds": v["seconds"], "peak_mb": v["peak_mb"]} for k, v in stages.items()},
                "cycle_seconds": round(total, 1),
                "cycle_peak_mb": peak,
                "forecast_reconcile_plan_seconds": round(fast, 1),
                "dominant_stage": dominant,
                "meets_total_time": ok and total <= 900,
                "meets_memory": ok and peak <= 8192,
                "meets_frp_time": ok and fast <= 180,
            }
        )
    )


if __name__ == "__main__":
    main()
