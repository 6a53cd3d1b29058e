"""Accuracy on `replenish synth` daily data against the oracle (issue 14).

Data: ``features.synth.generate`` daily, 2,000 series, 50 % intermittent (``intermittent_share=0.5``),
promotions (``promo_rate=0.05``: each series promotes a share of days drawn in [0, 10 %], with a lift of
30-120 %). The test window is the last 28 days; selection and ensemble weights use only validation origins
whose windows end before it (benchmarks/_stat_eval.py), and every model is refitted at every origin on the
last ``--max-history`` days before it.

Oracle: the generator's true per-period distribution (features/synth_truth.py: sales are
NegBin(r=5, mean=lam), lam from the series' parameters and its promotion calendar, replayed from the same
seed and checked against the generated promotions). Its quantiles are the floor no model can beat (in
expectation); each model's gap to it is reported. The statistical models do not read the promotion calendar,
the oracle does: the error on promoted days is reported separately.

Figures: MASE (of the median, seasonal scale m=7 on the history before the test window), mean pinball loss
over P10/P25/P50/P75/P90 in units, scaled pinball (per series divided by the same scale), P10..P90 coverage;
all on the test window, then on its promoted days only. Seconds per model: fits at all origins.

Usage: flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/synth_accuracy.py [--series 2000]
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._stat_eval import (  # noqa: E402
    Champion,
    classes_and_scale,
    forecast_all,
    metrics,
    selections,
    validation_actuals,
    validation_origins,
)
from features.synth import generate  # noqa: E402
from features.synth_truth import demand_distribution  # noqa: E402
from training.statistical import DEFAULT_LEVELS, DEFAULT_MODELS  # noqa: E402

SEASON = 7


def champion_slot(args: argparse.Namespace, data, info: dict) -> Champion | None:
    """The product's champion (benchmarks/_product_champion.py): ingest, ``train_tenant`` (TFT + served
    selection + gate), ``forecast_stage``, at every validation origin and at the test origin with only the
    history before it. It takes part in the benchmark's selection as one more candidate ("champion") and is
    reported alone beside the baselines and the oracle. None with ``--no-champion``.
    """
    if not args.champion:
        return None
    from benchmarks._product_champion import product_champion

    T = args.periods
    keys = data.sales.select("sku_id", "location_id", "channel_id").gather_every(T)
    dates = data.sales["date"].head(T).to_list()
    return product_champion(data, keys, dates, horizon=args.horizon, epochs=args.tft_epochs,
                            batches=args.tft_batches, info=info, refit=getattr(args, "refit", True))


def run(args: argparse.Namespace, champion: Champion | None = None) -> dict:
    N, T, H = args.series, args.periods, args.horizon
    levels = DEFAULT_LEVELS
    kw = dict(n_series=N, n_periods=T, freq="D", seed=args.seed, intermittent_share=0.5, promo_rate=0.05)
    t0 = time.perf_counter()
    data = generate(**kw)
    truth = demand_distribution(**kw).check(data)
    y = data.sales["qty"].to_numpy().reshape(N, T).astype(np.float64)
    if champion is None:
        champion = champion_slot(args, data, args.champion_info)
    print(f"data: {N} series x {T} days in {time.perf_counter() - t0:.1f} s", flush=True)

    T0 = T - H
    val_origins = validation_origins(T, H, args.val_origins, H)
    models = list(args.models)
    cpu: dict[str, float] = {}
    val, sec_val = forecast_all(y, val_origins, SEASON, H, levels, models, args.n_jobs, args.max_history,
                                champion, cpu=cpu)
    (test,), sec_test = forecast_all(y, [T0], SEASON, H, levels, models, args.n_jobs, args.max_history,
                                     champion, cpu=cpu)
    acts = validation_actuals(y, val_origins, H, min_obs=2 * SEASON)
    segments, scale = classes_and_scale(y, T0, SEASON)
    chosen, reports = selections(val, acts, levels, scale, segments, test)

    forecasts = {**test, **chosen, "oracle": truth.quantiles(levels, slice(T0, T))}
    y_test, y_train = y[:, T0:], y[:, :T0]
    promo = truth.promo[:, T0:]
    table = {}
    for name, F in forecasts.items():
        table[name] = {"all": metrics(y_test, y_train, F, levels, SEASON),
                       "promoted": metrics(y_test, y_train, F, levels, SEASON, mask=promo)}
    oracle = table["oracle"]
    for row in table.values():
        for part in ("all", "promoted"):
            for k in ("mase", "pinball", "scaled_pinball"):
                row[part][f"gap_{k}"] = row[part][k] / oracle[part][k] - 1.0
    seconds = {m: round(sec_val.get(m, 0.0) + sec_test.get(m, 0.0), 1) for m in {*sec_val, *sec_test}}
    cpu_seconds = {m: round(v, 1) for m, v in cpu.items()}
    classes, counts = np.unique(segments.astype(str), return_counts=True)
    return {"table": table, "seconds": seconds, "cpu_seconds": cpu_seconds, "selection": reports,
            "classes": dict(zip(classes.tolist(), counts.tolist(), strict=True)),
            "origins": {"validation": val_origins, "test": T0}, "promoted_share": float(promo.mean())}


def cold_start(args: argparse.Namespace) -> dict:
    """Cold start through the product: whole SKUs held out, forecast by the forecast stage from similar items.

    Every unit of every 10th SKU (by id) loses its sales before the test origin (``--cold-history`` H:
    all but the last H days; 0: all of it); its master data and planning units stay, as for a product about
    to launch. The tenant is ingested, trained (``train_tenant``) and forecast (``forecast_stage``) at the
    test origin as in the accuracy run; the held-out units are forecast by the stage's cold start (peers:
    same SKU elsewhere, then the most specific shared attribute, then the location). MAE of their P50 over
    the test window against the category average (``training.cold_start.category_average``: the mean sales
    of the warm units of the same category over the last 28 days, flat; with history, scaled to the unit's
    level over its days as the stage does) and the family average.
    """
    import dataclasses

    import polars as pl

    from benchmarks._product_champion import product_champion
    from training.cold_start import category_average

    N, T, H = args.series, args.periods, args.horizon
    kw = dict(n_series=N, n_periods=T, freq="D", seed=args.seed, intermittent_share=0.5, promo_rate=0.05)
    data = generate(**kw)
    y = data.sales["qty"].to_numpy().reshape(N, T).astype(np.float64)
    keys = data.sales.select("sku_id", "location_id", "channel_id").gather_every(T)
    dates = data.sales["date"].head(T).to_list()
    held = sorted(keys["sku_id"].unique().to_list())[::10]
    cold = keys["sku_id"].is_in(held).to_numpy()
    T0, keep = T - H, args.cold_history
    sales = data.sales.filter(~pl.col("sku_id").is_in(held) | (pl.col("date") >= dates[T0 - keep]))
    info: dict = {}
    champion = product_champion(dataclasses.replace(data, sales=sales), keys, dates, horizon=H,
                                epochs=args.tft_epochs, batches=args.tft_batches, info=info)
    hist = y[:, :T0].copy()
    hist[cold, : T0 - keep] = np.nan
    q = champion(hist, H, list(DEFAULT_LEVELS))
    ours = q[cold, :, list(DEFAULT_LEVELS).index(0.5)]
    actual = y[cold, T0:]
    attrs = keys.join(data.skus.select("sku_id", "category", "family"), on="sku_id", how="left",
                      maintain_order="left")
    out = {"held_out_skus": len(held), "cold_units": int(cold.sum()), "history_days": keep,
           "mae_similar_items": float(np.mean(np.abs(actual - ours))),
           "forecast_units": int(np.isfinite(ours).all(axis=1).sum()), "champion": info}
    for g in ("category", "family"):
        ref = category_average(hist, H, cold, [attrs[g].to_numpy()], window=28)[cold]
        if keep:
            own, peer = np.nanmean(hist[cold], axis=1), ref[:, 0]
            ref = ref * (own / np.where(peer > 0, peer, np.nan))[:, None]
        out[f"mae_{g}_average"] = float(np.mean(np.abs(actual - np.nan_to_num(ref))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--periods", type=int, default=730)
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--val-origins", type=int, default=2)
    ap.add_argument("--max-history", type=int, default=182)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--no-champion", dest="champion", action="store_false",
                    help="statistical models and selections only (no TFT)")
    ap.add_argument("--tft-epochs", type=int, default=None, help="champion's TFT epochs (default: 6)")
    ap.add_argument("--tft-batches", type=int, default=None, help="champion's TFT batches per epoch (20)")
    ap.add_argument("--no-refit", dest="refit", action="store_false",
                    help="champion's TFT not refitted on train + validation (the product refits)")
    ap.add_argument("--cold-start-only", action="store_true",
                    help="only the held-out-SKU evaluation of the forecast stage's cold start")
    ap.add_argument("--cold-history", type=int, default=0, help="days of sales the held-out SKUs keep")
    args = ap.parse_args()
    args.champion_info = {}
    t0 = time.perf_counter()
    if args.cold_start_only:
        out = cold_start(args)
        print(json.dumps({"benchmark": "synth_accuracy", "series": args.series, "cold_start": out,
                          "total_seconds": round(time.perf_counter() - t0, 1)}))
        return
    res = run(args)
    table = res["table"]
    print(f"\n{'model':18s} {'MASE':>7s} {'pinball':>8s} {'sc.pinb':>8s} {'cov80':>6s} {'gapMASE':>8s} "
          f"{'gapPinb':>8s} | promoted: {'MASE':>7s} {'pinball':>8s} {'gapPinb':>8s}")
    for name, row in sorted(table.items(), key=lambda kv: kv[1]["all"]["scaled_pinball"]):
        a, p = row["all"], row["promoted"]
        print(f"{name:18s} {a['mase']:7.3f} {a['pinball']:8.4f} {a['scaled_pinball']:8.4f} "
              f"{a['coverage_p10_p90']:6.3f} {a['gap_mase']:+8.1%} {a['gap_pinball']:+8.1%} | "
              f"          {p['mase']:7.3f} {p['pinball']:8.4f} {p['gap_pinball']:+8.1%}")
    print("wall seconds (all origins):", res["seconds"])
    print("cpu seconds (all origins, with statsforecast's workers):", res["cpu_seconds"])
    for method, rep in res["selection"].items():
        print(f"selection {method}: " + "; ".join(f"{k} ({v['n']}): {v['chosen']} {v['weights']}"
                                                  for k, v in rep["segments"].items()))
    best = min(args.models, key=lambda m: table[m]["all"]["scaled_pinball"])
    champ = {}
    if "champion" in table:
        c, b, o = table["champion"]["all"], table[best]["all"], table["oracle"]["all"]
        champ = {"champion_vs_best_baseline": {k: round(c[k] / b[k], 4) for k in ("mase", "pinball",
                                                                                  "scaled_pinball")},
                 "champion_beats_best_baseline": bool(c["mase"] < b["mase"] and c["pinball"] < b["pinball"]),
                 "champion_gap_to_oracle": {k: round(c[f"gap_{k}"], 4) for k in ("mase", "pinball")},
                 "oracle": {k: round(o[k], 4) for k in ("mase", "pinball")},
                 "champion_origins": {str(k): v for k, v in args.champion_info.items()}}
    summary = {
        "benchmark": "synth_accuracy", "series": args.series, "days": args.periods, "horizon": args.horizon,
        "validation_origins": res["origins"]["validation"], "test_origin": res["origins"]["test"],
        "max_history": args.max_history, "classes": res["classes"],
        "promoted_share_test": round(res["promoted_share"], 4),
        "best_baseline": best, **champ,
        "models": {k: {part: {m: round(v, 4) for m, v in row[part].items()} for part in row}
                   for k, row in table.items()},
        "seconds_per_model": res["seconds"], "cpu_seconds_per_model": res["cpu_seconds"],
        "total_seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                         "largest_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
