"""Ingest benchmark: 10 million synthetic sales rows from CSV into the fact store, with full validation.

Reference, in the same run: plain ``pandas.read_csv`` + ``DataFrame.to_parquet`` of the same file (no
validation). Each side runs in its own subprocess (fresh ``REPLENISH_HOME`` for ours, identities stored
beforehand, untimed) and reports its wall time and peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``).
Medians over ``--repeats``.
Target: ours <= 1.5x the reference, peak memory < 4 GB. The last line printed is one JSON object.

    flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/ingest.py [--series 10000 --periods 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child_ours(csv: Path, data_dir: Path, home: Path) -> dict:
    os.environ["REPLENISH_HOME"] = str(home)
    sys.path.insert(0, str(ROOT))
    from features.ingest import ingest

    for kind in ("channels", "locations", "skus"):
        r = ingest(kind, data_dir / f"{kind}.csv")
        assert r.exit_code == 0, r.summary()
    t0 = time.perf_counter()
    r = ingest("sales", csv)
    seconds = time.perf_counter() - t0
    assert r.exit_code == 0 and r.rows_stored == r.rows_total, r.summary()
    return {"seconds": seconds, "rows": r.rows_stored, "peak_rss": _peak_rss_bytes()}


def child_pandas(csv: Path, out: Path) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(csv)
    df.to_parquet(out)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(df), "peak_rss": _peak_rss_bytes()}


def _run(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--periods", type=int, default=1_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", choices=["ours", "pandas"])
    p.add_argument("--csv", type=Path)
    p.add_argument("--data", type=Path)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    if a.child == "ours":
        print(json.dumps(child_ours(a.csv, a.data, a.out)))
        return
    if a.child == "pandas":
        print(json.dumps(child_pandas(a.csv, a.out)))
        return

    sys.path.insert(0, str(ROOT))
    from features.synth import generate

    work = Path(tempfile.mkdtemp(prefix="replenish-bench-ingest-"))
    try:
        t0 = time.perf_counter()
        data = generate(a.series, a.periods, freq="D", seed=0)
        data.write(work / "data", fmt="csv")
        csv = work / "data" / "sales.csv"
        n = data.sales.height
        del data
        print(f"generated {n:,d} sales rows ({csv.stat().st_size / 1e6:,.0f} MB CSV) in "
              f"{time.perf_counter() - t0:.1f} s")
        ours, ref = [], []
        for i in range(a.repeats):
            ref.append(_run(["--child", "pandas", "--csv", str(csv), "--out", str(work / f"ref{i}.parquet")]))
            ours.append(_run(["--child", "ours", "--csv", str(csv), "--data", str(work / "data"),
                              "--out", str(work / f"home{i}")]))
            shutil.rmtree(work / f"home{i}", ignore_errors=True)
            (work / f"ref{i}.parquet").unlink(missing_ok=True)
            o, r = ours[-1], ref[-1]
            print(f"run {i + 1}: ours {o['seconds']:.2f} s ({o['peak_rss'] / 2**30:.2f} GiB peak), "
                  f"pandas read_csv+to_parquet {r['seconds']:.2f} s ({r['peak_rss'] / 2**30:.2f} GiB)")
        s_ours = statistics.median(r["seconds"] for r in ours)
        s_ref = statistics.median(r["seconds"] for r in ref)
        rss_ours = max(r["peak_rss"] for r in ours)
        rss_ref = max(r["peak_rss"] for r in ref)
        print(f"median: ours {s_ours:.2f} s with full validation, reference {s_ref:.2f} s without; "
              f"ratio {s_ours / s_ref:.2f} (target <= 1.5); peak RSS ours {rss_ours / 2**30:.2f} GiB "
              f"(target < 4 GB), reference {rss_ref / 2**30:.2f} GiB")
        print(json.dumps({"bench": "ingest", "rows": n, "seconds": round(s_ours, 3),
                          "ref_seconds": round(s_ref, 3),
                          "ratio": round(s_ours / s_ref, 3), "peak_rss_gb": round(rss_ours / 1e9, 3),
                          "ref_peak_rss_gb": round(rss_ref / 1e9, 3), "repeats": a.repeats,
                          "target_ratio": 1.5, "target_peak_rss_gb": 4.0}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
