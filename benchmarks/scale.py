"""Scale-out: the forecast and plan stages on a local Ray cluster of 1 and 2 worker nodes vs in-process.

Reference in the same run: the in-process path on one core (``OMP/NUMBA/torch`` threads = 1, set before the
libraries load), the same code the cluster's workers run (1 CPU each). Printed per stage and size:
throughput (units/s), scaling efficiency (``T(1 node) / (2 x T(2 nodes))``) and Ray overhead
(``T(1 node) / T(in-process) - 1``); medians of ``--repeats`` runs.

* **forecast** — a weekly synthetic tenant (``--forecast-units`` series, 60 weeks) is ingested, a small TFT is
  trained and promoted, then ``training.stage.forecast_stage`` (in-process) and
  ``training.distributed.forecast_stage_distributed`` (Ray Data, actors holding the model, ``--partitions``
  partitions) forecast every unit and store the run.
* **plan** — ``--plan-units`` units (default 1,000,000) planned in partitions of ``--partition-units``; each
  partition's inputs are generated where it is planned (``benchmarks/plan_scale.py``'s generator, seed = the
  partition), so no process ever holds all units: in-process the partitions run one after the other, on the
  cluster as Ray tasks (``planning.ray_map``). ``planning.plan`` with 256 paths, crossing orders, the
  lead-time posterior and the shipped routing rules. Peak resident memory of every worker is reported.
* **plan-10M** — ``--big-units`` (default 10,000,000) planned the same way on the 2-node cluster; the largest
  worker peak memory is checked against ``--max-worker-gb`` (4 GB).

Sizes that would not finish on a shared 2-core machine can be lowered; docs/scaling.md projects from the
per-unit figures printed here. The last line is one JSON object with every figure.

Usage: ``flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/scale.py [--plan-units 1000000]``
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"  # the in-process reference gets one core, as each worker node has
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))  # after the project: benchmarks/serving.py must not shadow it
# the cluster's nodes start from this environment: they import the project and the plan generator from it
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), str(ROOT / "benchmarks"), *filter(None, [os.environ.get("PYTHONPATH")])]
)

from _scale_tenant import tenant  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def plan_partition(n: int, seed: int) -> dict:
    """Generate and plan one partition of ``n`` units (runs in-process or as a Ray task)."""
    import torch

    torch.set_num_threads(1)
    from plan_scale import build

    from planning import PlanConfig, load_rules, plan

    t0 = time.perf_counter()
    units, forecast, pmf, _budget, _mean, counts = build(n, seed)
    t1 = time.perf_counter()
    res = plan(
        units,
        forecast,
        pmf,
        as_of=date(2026, 1, 5),
        lead_time_counts=counts,
        config=PlanConfig(n_paths=256, seed=0),
        rules=load_rules(ROOT / "configs" / "routing.yaml"),
    )
    t2 = time.perf_counter()
    return {
        "units": units.height,
        "recommendations": res.recommendations.height,
        "build_s": t1 - t0,
        "plan_s": t2 - t1,
        "peak_mb": _peak_mb(),
        "pid": os.getpid(),
    }


def _plan_run(n_units: int, part: int, remote=None) -> dict:
    sizes = [min(part, n_units - i) for i in range(0, n_units, part)]
    t0 = time.perf_counter()
    if remote is None:
        outs = [plan_partition(s, k) for k, s in enumerate(sizes)]
    else:
        import ray

        outs = ray.get([remote.remote(s, k) for k, s in enumerate(sizes)])
    wall = time.perf_counter() - t0
    peak = {}
    for o in outs:
        peak[o["pid"]] = max(peak.get(o["pid"], 0.0), o["peak_mb"])
    return {
        "seconds": wall,
        "units": sum(o["units"] for o in outs),
        "partitions": len(sizes),
        "plan_s": sum(o["plan_s"] for o in outs),
        "build_s": sum(o["build_s"] for o in outs),
        "max_worker_peak_mb": max(peak.values()),
        "workers": len(peak),
    }


def _forecast_run(settings, engine, distributed: bool, partitions: int, units: int, k: int) -> float:
    from training.distributed import forecast_stage_distributed
    from training.stage import forecast_stage

    t0 = time.perf_counter()
    if distributed:
        forecast_stage_distributed(
            "bench", run_id=f"d{k}", settings=settings, engine=engine, partition_units=-(-units // partitions)
        )
    else:
        forecast_stage("bench", run_id=f"l{k}", settings=settings, engine=engine)
    return time.perf_counter() - t0


def _median(xs):
    return statistics.median(xs)


def _stage_figures(name: str, local, one, two, n: int) -> dict:
    """A stage's figures from its run times in-process, on 1 and on 2 worker nodes (medians)."""
    lo, o, w = _median(local), _median(one), _median(two)
    return {
        f"{name}_units": n,
        f"{name}_inprocess_s": round(lo, 2),
        f"{name}_1node_s": round(o, 2),
        f"{name}_2node_s": round(w, 2),
        f"{name}_inprocess_units_per_s": round(n / lo),
        f"{name}_1node_units_per_s": round(n / o),
        f"{name}_2node_units_per_s": round(n / w),
        f"{name}_scaling_efficiency": round(o / (2 * w), 3),
        f"{name}_ray_overhead": round(o / lo - 1, 3),
    }


def main() -> None:  # noqa: PLR0915 - one linear script
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--forecast-units", type=int, default=4000)
    ap.add_argument("--partitions", type=int, default=8, help="forecast partitions")
    ap.add_argument("--plan-units", type=int, default=1_000_000)
    ap.add_argument("--partition-units", type=int, default=100_000)
    ap.add_argument("--big-units", type=int, default=10_000_000)
    ap.add_argument("--max-worker-gb", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()

    import ray
    import torch
    from ray.cluster_utils import Cluster

    torch.set_num_threads(1)
    from kernels import warmup

    warmup()
    out: dict = {
        "bench": "scale",
        "cores_per_worker": 1,
        "forecast_units": a.forecast_units,
        "plan_units": a.plan_units,
        "big_units": a.big_units,
        "partition_units": a.partition_units,
    }
    home = Path(tempfile.mkdtemp(prefix="replenish-scale-"))
    t = time.perf_counter()
    settings, engine = tenant(home, a.forecast_units)
    units = None
    print(f"tenant: {a.forecast_units} series ingested, model trained in {time.perf_counter() - t:.0f}s")

    # in-process reference (one core)
    plan_partition(1000, 999)  # compile the kernels once, as a warm worker has
    _forecast_run(settings, engine, False, a.partitions, a.forecast_units, 99)
    f_local = [
        _forecast_run(settings, engine, False, a.partitions, a.forecast_units, k) for k in range(a.repeats)
    ]
    from features.forecasts import forecast_runs

    units = forecast_runs("bench", "base", facts_dir=settings.facts_dir)[0].extra["units"]
    p_local = [_plan_run(a.plan_units, a.partition_units) for _ in range(a.repeats)]
    print(
        f"in-process: forecast {units} units {_median(f_local):.1f}s; plan {a.plan_units:,} units "
        f"{_median([p['seconds'] for p in p_local]):.1f}s"
    )

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 200 * 2**20}
    )
    try:
        cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        remote = ray.remote(num_cpus=1, max_retries=3)(plan_partition)
        results = {}
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
                cluster.wait_for_nodes()
            # untimed warm-up: every worker imports, compiles its kernels and loads the model once
            _plan_run(nodes * a.partition_units, a.partition_units, remote)
            _forecast_run(settings, engine, True, a.partitions, a.forecast_units, 99)
            f = [
                _forecast_run(settings, engine, True, a.partitions, a.forecast_units, k)
                for k in range(a.repeats)
            ]
            p = [_plan_run(a.plan_units, a.partition_units, remote) for _ in range(a.repeats)]
            results[nodes] = (f, p)
            print(
                f"{nodes} worker node(s): forecast {_median(f):.1f}s; "
                f"plan {_median([x['seconds'] for x in p]):.1f}s; "
                f"worker peak {max(x['max_worker_peak_mb'] for x in p):.0f} MB"
            )
        t = time.perf_counter()
        big = _plan_run(a.big_units, a.partition_units, remote)
        print(
            f"{a.big_units:,} units planned in {big['partitions']} partitions on 2 nodes: "
            f"{big['seconds']:.0f}s, "
            f"largest worker peak {big['max_worker_peak_mb']:.0f} MB"
        )
    finally:
        ray.shutdown()
        cluster.shutdown()

    out.update(_stage_figures("forecast", f_local, results[1][0], results[2][0], units))
    sec = lambda ps: [p["seconds"] for p in ps]  # noqa: E731
    out.update(_stage_figures("plan", sec(p_local), sec(results[1][1]), sec(results[2][1]), a.plan_units))
    out["plan_worker_peak_mb"] = round(max(x["max_worker_peak_mb"] for x in results[2][1]))
    out["plan_inprocess_peak_mb"] = round(max(x["max_worker_peak_mb"] for x in p_local))
    out["plan_build_share"] = round(
        statistics.median([p["build_s"] / (p["build_s"] + p["plan_s"]) for p in p_local]), 3
    )
    out.update(
        big_seconds=round(big["seconds"], 1),
        big_units_per_s=round(a.big_units / big["seconds"]),
        big_partitions=big["partitions"],
        big_max_worker_peak_mb=round(big["max_worker_peak_mb"]),
        big_meets_memory=big["max_worker_peak_mb"] <= a.max_worker_gb * 1024,
    )
    print(
        f"forecast: {out['forecast_inprocess_units_per_s']} units/s in-process, "
        f"{out['forecast_1node_units_per_s']} on 1 node, {out['forecast_2node_units_per_s']} on 2 "
        f"(efficiency {out['forecast_scaling_efficiency']}, Ray overhead {out['forecast_ray_overhead']:+.0%})"
    )
    print(
        f"plan: {out['plan_inprocess_units_per_s']} units/s in-process, {out['plan_1node_units_per_s']} on 1 "
        f"node, {out['plan_2node_units_per_s']} on 2 (efficiency {out['plan_scaling_efficiency']}, "
        f"Ray overhead {out['plan_ray_overhead']:+.0%})"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
