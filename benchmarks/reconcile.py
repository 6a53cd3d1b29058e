"""Benchmark: hierarchical reconciliation on Total -> 100 regions -> 1,000 stores -> N series.

Times every method of ``kernels.reconcile`` (median of several runs, with the hierarchy analysed once, plus
the first call that analyses ``S``), its peak traced allocation, checks its answer, and runs
hierarchicalforecast 1.5.3's best available variant of the same method on the same data in the same process,
reporting its time and its max error against the exact answer.

Exactness is certified independently of our solver: coherence ``max|S b - y| / max|y|`` and, for the MinT
family, the normal-equation residual ``|S' W^-1 (y_hat - y_tilde)| / |S' W^-1 y_hat|`` with ``W^-1`` applied
in the n-space (diagonal, or Woodbury on the T x T capacitance for MinT-shrink), which is 0 only at the GLS
optimum.

Usage:
    flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/reconcile.py --n 100000
    flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/reconcile.py --n 1000000 --ref-methods
    bottom_up,wls_struct

The last line printed is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import statistics
import time
import tracemalloc

import numpy as np
import polars as pl
import scipy.sparse as sp

from kernels import _reconcile_gls as gls
from kernels.reconcile import Hierarchy, reconcile, warmup
from kernels.reconcile_frame import frame_hierarchy, reconcile_frame

METHODS = ("bottom_up", "top_down", "middle_out", "ols", "wls_struct", "wls_var", "mint_shrink")
REGIONS, STORES = 100, 1000


def build(N: int, h: int, T: int, seed: int):
    """Synthetic hierarchy, base forecasts (incoherent) and correlated in-sample residuals."""
    rng = np.random.default_rng(seed)
    store = np.arange(N, dtype=np.int64) * STORES // N
    region = store * REGIONS // STORES
    a = 1 + REGIONS + STORES
    n = a + N
    rows = np.concatenate([np.zeros(N, np.int64), 1 + region, 1 + REGIONS + store, a + np.arange(N)])
    cols = np.tile(np.arange(N, dtype=np.int64), 4)
    S = sp.csr_array((np.ones(4 * N), (rows, cols)), shape=(n, N))
    hier = Hierarchy(S)
    level = rng.gamma(2.0, 5.0, size=(N, 1))
    y_hat = hier.S @ (level * rng.lognormal(0.0, 0.3, size=(N, h)))
    y_hat *= rng.lognormal(0.0, 0.05, size=y_hat.shape)  # aggregate forecasts disagree with their sums
    # In-sample residuals with shared shocks (total, region, store) plus idiosyncratic noise: correlated
    # enough that the shrinkage intensity is inside (0, 1) (about 0.64 at N = 100,000), so MinT-shrink's
    # low-rank part is exercised.
    shocks = (
        rng.standard_normal((1, T))
        + rng.standard_normal((REGIONS, T))[region]
        + rng.standard_normal((STORES, T))[store]
    )
    R = hier.S @ (shocks + 3.0 * rng.standard_normal((N, T)))
    R += rng.standard_normal((n, T)) * np.sqrt(np.asarray(S.sum(axis=1)).ravel())[:, None]
    tags = {
        "total": np.array([0]),
        "region": np.arange(1, 1 + REGIONS),
        "store": np.arange(1 + REGIONS, a),
        "series": np.arange(a, n),
    }
    keys = pl.DataFrame({"region": region, "store": store, "series": np.arange(N)})
    return S, hier, y_hat, R, tags, keys, store, region


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def traced_peak_mb(fn) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def certificate(S: sp.csr_array, y_hat: np.ndarray, y_tilde: np.ndarray, method: str, R: np.ndarray) -> float:
    """|S' W^-1 (y_hat - y_tilde)| / |S' W^-1 y_hat| with W^-1 applied in the n-space (0 at the optimum)."""
    n = S.shape[0]
    if method == "ols":
        Winv = lambda v: v  # noqa: E731
    elif method == "wls_struct":
        w = np.asarray(S.sum(axis=1)).ravel()
        Winv = lambda v: v / w[:, None]  # noqa: E731
    else:
        D = np.einsum("ij,ij->i", R, R) / R.shape[1]
        if method == "wls_var":
            Winv = lambda v: v / D[:, None]  # noqa: E731
        else:
            lam = gls.shrinkage_intensity(R, np, D)
            lamD = lam * D
            V = R * np.sqrt((1.0 - lam) / R.shape[1])
            LiV = V / lamD[:, None]
            cap = np.eye(V.shape[1]) + V.T @ LiV

            def Winv(v):
                Liv = v / lamD[:, None]
                return Liv - LiV @ np.linalg.solve(cap, V.T @ Liv)

    del n
    St = S.T.tocsr()
    num = np.abs(St @ Winv(y_hat - y_tilde)).max()
    den = np.abs(St @ Winv(y_hat)).max()
    return float(num / den)


def hf_reference(method: str, S, y_hat, R, tags, repeats: int):
    """hierarchicalforecast 1.5.3's best variant of ``method``.

    Returns:
        (name, median seconds, answer), or (why there is none, None, None).
    """
    from hierarchicalforecast.methods import (  # noqa: PLC0415
        BottomUpSparse,
        MiddleOutSparse,
        MinTraceSparse,
        TopDownSparse,
    )

    S_m = sp.csr_matrix(S)
    if method == "bottom_up":
        name, fn = "BottomUpSparse", lambda: BottomUpSparse().fit_predict(S=S_m, y_hat=y_hat)["mean"]
    elif method == "top_down":
        name = "TopDownSparse(forecast_proportions)"
        fn = lambda: TopDownSparse("forecast_proportions").fit_predict(  # noqa: E731
            S=S_m, y_hat=y_hat, tags=tags
        )["mean"]
    elif method == "middle_out":
        name = "MiddleOutSparse(store, forecast_proportions)"
        n, m = S.shape
        if n * m * 8 > 2**31:
            return (
                (
                    f"none at this size: MiddleOutSparse calls np.unique(S[:cut], axis=1), which needs "
                    f"S as a dense "
                    f"array ({n * m * 8 / 2**30:.0f} GiB)"
                ),
                None,
                None,
            )
        S_dense = S.toarray()
        fn = lambda: MiddleOutSparse("store", "forecast_proportions").fit_predict(  # noqa: E731
            S=S_dense, y_hat=y_hat, tags=tags
        )["mean"]
    elif method in ("ols", "wls_struct", "wls_var"):
        name = f"MinTraceSparse({method})"
        zeros = np.zeros_like(R) if method == "wls_var" else None
        fn = lambda: MinTraceSparse(method).fit_predict(  # noqa: E731
            S=S_m, y_hat=y_hat, y_insample=R if zeros is not None else None, y_hat_insample=zeros
        )["mean"]
    else:
        n = S.shape[0]
        return (
            (
                f"none: hierarchicalforecast has no sparse MinT-shrink; its dense "
                f"MinTrace('mint_shrink') needs "
                f"n x n = {n * n * 8 / 2**30:.0f} GiB"
            ),
            None,
            None,
        )
    seconds, out = timed(fn, repeats)
    return name, seconds, np.asarray(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="bottom series N")
    p.add_argument("--h", type=int, default=28)
    p.add_argument("--T", type=int, default=100, help="in-sample residuals per series")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ref-repeats", type=int, default=3)
    p.add_argument(
        "--ref-methods",
        default=None,
        help="methods to run the reference for ('' = none); default: all, but top_down and middle_out "
        "only up to N = 20,000 (hierarchicalforecast took 2.8 s and 26 s for them at N = 10,000)",
    )
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if args.ref_methods is None:
        slow = {"top_down", "middle_out"} if args.n > 20_000 else set()
        ref_methods = set(METHODS) - slow
        if slow:
            print("reference for top_down and middle_out skipped above N = 20,000 (--ref-methods to force)")
    else:
        ref_methods = {m for m in args.ref_methods.split(",") if m}

    t0 = time.perf_counter()
    warmup()
    print(f"warmup (compile or load cached kernels): {time.perf_counter() - t0:.2f} s")
    S, hier, y_hat, R, tags, keys, store, region = build(args.n, args.h, args.T, args.seed)
    n, m = S.shape
    lam = gls.shrinkage_intensity(R, np)
    print(f"MinT-shrink intensity of these residuals: lambda = {lam:.3f}")
    print(
        f"hierarchy: n = {n:,} series, m = {m:,} bottom, a = {hier.a:,} aggregates, h = {args.h}, T = "
        f"{args.T}"
    )
    scale = np.abs(y_hat).max()
    kw = {"residuals": R, "level": 2}
    results: dict[str, dict] = {}
    for method in methods:
        t0 = time.perf_counter()
        reconcile(S, y_hat, method, **kw)  # first call: analyses S (a fresh Hierarchy) as well
        first = time.perf_counter() - t0
        seconds, out = timed(lambda method=method: reconcile(hier, y_hat, method, **kw), args.repeats)
        peak = traced_peak_mb(lambda method=method: reconcile(hier, y_hat, method, **kw))
        coherence = float(np.abs(S @ out[hier.bottom_rows] - out).max() / scale)
        row = {
            "seconds": seconds,
            "first_call_seconds": first,
            "peak_traced_mb": peak,
            "coherence": coherence,
        }
        if method in ("ols", "wls_struct", "wls_var", "mint_shrink"):
            row["certificate"] = certificate(S, y_hat, out, method, R)
        results[method] = row
        print(
            f"{method:12s} ours {seconds * 1e3:9.1f} ms (median of {args.repeats}; first call with S "
            f"analysis "
            f"{first * 1e3:.1f} ms)  peak {peak:7.1f} MiB  coherence {coherence:.1e}"
            + (f"  optimality residual {row['certificate']:.1e}" if "certificate" in row else "")
        )
        results[method]["_out"] = out
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10

    # Frame level, end to end: level columns + long forecast frame in, long frame out.
    ds = pl.date_range(
        datetime.date(2026, 1, 1), datetime.date(2026, 1, 1) + datetime.timedelta(days=args.h - 1), eager=True
    )
    spec = [[], ["region"], ["region", "store"], ["region", "store", "series"]]
    fh0 = frame_hierarchy(keys, spec)
    fc = pl.DataFrame(
        {
            "unique_id": fh0.ids.gather(np.repeat(np.arange(n), args.h)),
            "ds": ds.gather(np.tile(np.arange(args.h), n)),
            "y_hat": y_hat.ravel(),
        }
    )

    def frame_call():
        fh = frame_hierarchy(keys, spec)
        return reconcile_frame(fc, fh, "wls_struct")

    frame_seconds, frame_out = timed(frame_call, args.repeats)
    frame_err = float(
        np.abs(
            frame_out["y_hat"].to_numpy().reshape(n, args.h) - reconcile(fh0.hierarchy, y_hat, "wls_struct")
        ).max()
        / scale
    )
    print(
        f"frame-level wls_struct end to end (build hierarchy from level columns, long frame in and out, "
        f"{fc.height:,} rows): {frame_seconds * 1e3:.1f} ms (median of {args.repeats}), "
        f"max rel. difference to the array call {frame_err:.1e}"
    )

    # Reference: hierarchicalforecast 1.5.3 on the same arrays.
    try:
        import hierarchicalforecast  # noqa: PLC0415

        hf_version = hierarchicalforecast.__version__
    except ImportError:
        hf_version = None
        print("hierarchicalforecast is not installed (pip install 'replenish[bench]'): reference skipped")
    var_ddof1 = np.var(R, axis=1, ddof=1)
    for method in methods:
        row = results[method]
        out = row.pop("_out")
        if hf_version is None or method not in ref_methods:
            continue
        name, ref_s, ref_out = hf_reference(method, S, y_hat, R, tags, args.ref_repeats)
        row["reference"] = name
        if ref_s is None:
            print(f"{method:12s} reference {name}")
            continue
        exact = out
        if method == "wls_var":
            # MinTraceSparse('wls_var') uses the centred ddof=1 variance; its exact answer for that W:
            exact = reconcile(hier, y_hat, "wls", weights=var_ddof1)
            row["reference_note"] = "exact answer for the reference's own W (centred variance, ddof=1)"
        err = float(np.abs(ref_out - exact).max() / np.abs(exact).max())
        row.update(reference_seconds=ref_s, speedup=ref_s / row["seconds"], reference_max_rel_err=err)
        print(
            f"{method:12s} reference {name}: {ref_s * 1e3:9.1f} ms (median of {args.ref_repeats}) -> ours is "
            f"{ref_s / row['seconds']:.1f}x faster; reference max rel. error vs exact {err:.1e}"
        )
    for row in results.values():
        row.pop("_out", None)
    rss_all = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(
        f"peak RSS: {rss_ours:,.0f} MiB after our methods (data included); {rss_all:,.0f} MiB with the "
        f"reference"
    )
    print(
        json.dumps(
            {
                "bench": "reconcile",
                "n_bottom": m,
                "n_series": n,
                "h": args.h,
                "T": args.T,
                "hierarchicalforecast": hf_version,
                "shrinkage_lambda": lam,
                "methods": results,
                "frame_wls_struct_seconds": frame_seconds,
                "frame_max_rel_diff": frame_err,
                "peak_rss_mb_ours": rss_ours,
                "peak_rss_mb_with_reference": rss_all,
            }
        )
    )


if __name__ == "__main__":
    main()
