"""Serving throughput and latency on loopback: batching on versus off, HTTP forecasts versus a no-op endpoint.

One local Ray Serve instance, one application (API ingress + the optional batched model deployment), the same
replicas for every case; batching is switched with the model deployment's ``user_config`` (a reconfigure,
not a restart).

The forecast tenant is set up through the product's path: its files (``features.synth``, weekly, ``--units``
series) go through ``features.ingest``, and a forecast run made from the ingested sales is stored with
``features.forecasts.write_forecasts``; ``/v1/forecasts`` answers the caller's tenant from that stored run
(the ingress replica's cache), as in production.

Cases (each: median throughput over ``--rounds`` windows of ``--seconds``; p50/p99 over all requests):
  (a) 1-unit forecasts from 64 concurrent in-cluster callers (an async Ray actor) through the model
      deployment's DeploymentHandle, batching on vs off (max_batch_size 1). Target: on >= 4x off.
  (b) over HTTP from 64 keep-alive clients: 1-unit stored forecasts of the tenant (each client its own unit)
      beside the app's no-op endpoint (``/healthz``). Target: forecasts/s >= 80% of no-op requests/s; and p99
      of a 1-unit forecast <= 300 ms under 16 clients. A POST pays more than a GET on Serve whatever the route
      does: the replica pulls a request's body from the HTTP proxy with one more actor call
      (``ray.serve._private.http_util.ASGIReceiveProxy``), and the decision app's metering middleware
      (``serving.api.main``, a ``BaseHTTPMiddleware``) wraps every ``receive`` in a task group.
  (c) 100-unit requests from 64 in-cluster callers to the model deployment, batching on vs off (reported).

The model deployment serves a small real torch quantile network (the stand-in ``QuantileMLP``). The last line
printed is one JSON object with the figures.

    flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/serving.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _percentiles(lat_s: list[float]) -> tuple[float, float]:
    a = np.asarray(lat_s) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


async def _run_rounds(
    make_call, concurrency: int, seconds: float, rounds: int, warmup_s: float = 1.0, keep: bool = False
):
    """Run ``concurrency`` loops of ``make_call()``; returns (median req/s, p50 ms, p99 ms, failures).

    With ``keep`` the latencies (s) follow as a fifth item.
    """
    lat: list[float] = []
    rates: list[float] = []
    failures = 0

    async def worker(stop_at: float, sink: list[float] | None):
        nonlocal failures
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            ok = await make_call()
            if sink is not None:
                if ok:
                    sink.append(time.perf_counter() - t0)
                else:
                    failures += 1

    if warmup_s > 0:
        await asyncio.gather(*[worker(time.perf_counter() + warmup_s, None) for _ in range(concurrency)])
    for _ in range(rounds):
        sink: list[float] = []
        t_start = time.perf_counter()
        await asyncio.gather(*[worker(t_start + seconds, sink) for _ in range(concurrency)])
        rates.append(len(sink) / (time.perf_counter() - t_start))
        lat += sink
    if not rounds:
        return 0.0, 0.0, 0.0, failures
    p50, p99 = _percentiles(lat) if lat else (float("nan"), float("nan"))
    out = (statistics.median(rates), p50, p99, failures)
    return (*out, lat) if keep else out


class _Conn:
    """A minimal keep-alive HTTP/1.1 client connection (lighter than a full client on 2 shared cores)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            if k.lower() == "content-length":
                length = int(v.strip())
            elif k.lower() == "connection" and v.strip().lower() == "close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


def _raw(method: str, path: str, host: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        "Connection: keep-alive",
        f"Content-Length: {len(body)}",
    ]
    if body:
        head.append("Content-Type: application/json")
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _http_interleaved(
    host, port, cases: dict[str, list[bytes]], clients: int, seconds: float, rounds: int
):
    """Run the HTTP ``cases`` in turn, round after round, each from ``clients`` keep-alive connections.

    Interleaving the windows keeps the ratios between cases fair on a shared machine whose load drifts; in
    each case connection i always sends ``cases[name][i % n]``.

    Returns:
        ``{name: (median req/s, p50 ms, p99 ms, failures)}``.
    """
    pools = {}
    for name, reqs in cases.items():
        pool: asyncio.Queue = asyncio.Queue()
        for i in range(clients):
            pool.put_nowait((_Conn(host, port), reqs[i % len(reqs)]))
        pools[name] = pool

    def caller(pool):
        async def call():
            c, req = await pool.get()
            try:
                return await c.request(req) == 200
            except (ConnectionError, asyncio.IncompleteReadError):
                c.writer = None
                return False
            finally:
                pool.put_nowait((c, req))

        return call

    lat: dict[str, list[float]] = {n: [] for n in cases}
    rates: dict[str, list[float]] = {n: [] for n in cases}
    failed = dict.fromkeys(cases, 0)
    for name in cases:  # warm-up: connections opened, caches filled
        await _run_rounds(caller(pools[name]), clients, 1.0, 0, warmup_s=1.0)
    for _ in range(rounds):
        for name in cases:
            rate, _p50, _p99, fail, sink = await _run_rounds(
                caller(pools[name]), clients, seconds, 1, warmup_s=0.0, keep=True
            )
            rates[name].append(rate)
            lat[name] += sink
            failed[name] += fail
    return {n: (statistics.median(rates[n]), *_percentiles(lat[n]), failed[n]) for n in cases}


class _LoadGen:
    """Concurrent callers inside the cluster (an async Ray actor) calling the model deployment's handle."""

    def __init__(self, units: list[str]) -> None:
        self.units = units
        self.rng = np.random.default_rng(0)

    async def run(self, app_name: str, n_units: int, concurrency: int, seconds: float, rounds: int):
        from ray import serve

        handle = serve.get_deployment_handle("ForecastModel", app_name=app_name)

        async def call():
            pick = [self.units[i] for i in self.rng.integers(0, len(self.units), n_units)]
            out = await handle.forecast.remote(pick)
            return out["values"].shape[0] == n_units

        return await _run_rounds(call, concurrency, seconds, rounds)


def _model_args() -> tuple[dict, list[str], str]:
    spec = {"n_units": 350, "lookback": 36, "horizon": 6, "hidden": 64, "depth": 2}
    return (
        {
            "loader": "tests.serving._mlp_predictor:make_mlp_predictor",
            "resolver": None,
            "loader_kwargs": {"spec": spec, "seed": 0, "version": "mlp-standin"},
        },
        [f"u{i:05d}" for i in range(350)],
        "QuantileMLP stand-in (hidden 64, 350 units)",
    )


def _setup_tenant(settings, engine, tenant: str, n_units: int) -> tuple[list[str], str]:
    """Ingest a synthetic weekly tenant and store a forecast run made from its ingested sales.

    Returns:
        The stored run's bottom unit ids and a description of the tenant.
    """
    import polars as pl

    from features import synth
    from features.forecasts import ForecastRunMeta, quantile_column, sales_watermark, write_forecasts
    from features.ingest import ingest
    from features.tables import read_tables

    t0 = time.perf_counter()
    data = synth.generate(n_series=n_units, n_periods=104, freq="W", seed=0, start="2024-01-01")
    tables = data.tables()
    folder = Path(settings.home) / "bench-files"
    for kind, path in data.write(folder).items():
        if tables[kind].height == 0:
            continue
        result = ingest(kind, path, tenant=tenant, engine=engine, settings=settings)
        if result.exit_code != 0:
            raise RuntimeError(result.summary())
    t_ingest = time.perf_counter() - t0
    sales = read_tables(tenant, engine=engine, settings=settings)["sales"]
    last = sales["date"].max()
    levels = (0.1, 0.25, 0.5, 0.75, 0.9)
    horizon = 12
    # A seasonal-free stand-in forecast of the ingested sales: the mean of the last 13 weeks, spread by level.
    recent = (
        sales.filter(pl.col("date") > last - pl.duration(weeks=13))
        .group_by("sku_id", "location_id", "channel_id")
        .agg(pl.col("qty").mean().alias("m"))
    )
    steps = pl.DataFrame({"horizon": list(range(1, horizon + 1))}, schema={"horizon": pl.Int64})
    frame = recent.join(steps, how="cross").with_columns(
        pl.concat_str("sku_id", "location_id", "channel_id", separator="|").alias("unique_id"),
        pl.lit("bottom").alias("level"),
        (pl.lit(last) + pl.duration(weeks=pl.col("horizon"))).cast(pl.Date).alias("date"),
        pl.lit("model:bench").alias("source"),
        pl.lit("1").alias("model_version"),
        pl.lit(False).alias("cold_start"),
        *[(pl.col("m") * (0.5 + q)).alias(quantile_column(q)) for q in levels],
    )
    meta = ForecastRunMeta(
        run_id="bench-1",
        tenant=tenant,
        stage="base",
        freq="W",
        horizon=horizon,
        levels=levels,
        data_watermark=sales_watermark(tenant, facts_dir=settings.facts_dir),
        model_name="bench",
        model_version="1",
    )
    write_forecasts(tenant, frame, meta, facts_dir=settings.facts_dir)
    units = sorted(frame["unique_id"].unique().to_list())
    desc = (
        f"tenant {tenant}: {len(units)} units ingested in {t_ingest:.1f} s, stored run bench-1, H={horizon}"
    )
    return units, desc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-wait-s", type=float, default=0.05)
    ap.add_argument(
        "--part", choices=["all", "http"], default="all", help="http: only case (b), the API ingress alone"
    )
    ap.add_argument("--units", type=int, default=350, help="planning units of the forecast tenant")
    ap.add_argument("--home", type=Path, default=None, help="REPLENISH_HOME (default: a new temp folder)")
    args = ap.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.home:
        os.environ["REPLENISH_HOME"] = str(args.home.resolve())
    else:
        os.environ.setdefault("REPLENISH_HOME", tempfile.mkdtemp(prefix="rp-bench-home-"))
    from features.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    model_cfg, model_units, model_desc = _model_args()

    from features.store._db import make_engine, session_scope
    from serving.migrations import migrate_store
    from workflow.access import create_key, ensure_tenant

    engine = make_engine(settings.database_url)
    migrate_store(engine)
    fc_units, tenant_desc = _setup_tenant(settings, engine, "bench", args.units)
    print(tenant_desc)
    with session_scope(engine) as s:
        ensure_tenant(s, "bench")
        api_key = create_key(s, "bench", ["viewer"], name="serving-benchmark", actor="benchmark")[1]
    engine.dispose()

    import ray
    from ray import serve

    from serving.deploy import build_app
    from serving.deploy._local import free_port, run_app, shutdown, start_serve

    host, port = "127.0.0.1", free_port()
    start_serve(host, port, num_cpus=4, object_store_memory=200 * 1024**2)

    def deploy(max_batch_size: int | None):
        """The app with the model deployment batching up to ``max_batch_size`` (None: the API alone)."""
        app_args: dict = {
            "api": {
                "settings": {"home": str(settings.home)},
                "max_ongoing_requests": 256,
                "max_queued_requests": -1,
                "ray_actor_options": {"num_cpus": 1},
            },
        }
        if max_batch_size is not None:
            app_args["model"] = {
                **model_cfg,
                "max_batch_size": max_batch_size,
                "batch_wait_timeout_s": args.batch_wait_s,
                "max_ongoing_requests": 512,
                "max_queued_requests": -1,
                "torch_threads": 1,
                "ray_actor_options": {"num_cpus": 1},
            }
        run_app(build_app(app_args), name="bench", route_prefix="/")

    results: dict = {
        "bench": "serving",
        "model": model_desc,
        "tenant": tenant_desc,
        "forecast_path": "stored forecasts (ForecastStore in the ingress replica)",
        "max_batch_size": args.max_batch_size,
        "batch_wait_s": args.batch_wait_s,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    try:

        def report(name, r):
            rate, p50, p99, fail = r
            print(f"{name:<44s} {rate:9.1f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   failed {fail}")
            return {"rps": round(rate, 1), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "failed": fail}

        if args.part == "all":
            t0 = time.perf_counter()
            deploy(args.max_batch_size)
            print(f"serve: app up in {time.perf_counter() - t0:.1f} s on http://{host}:{port} ({model_desc})")
            handle = serve.get_deployment_handle("ForecastModel", app_name="bench")

            # The in-cluster callers: one async Ray actor holding a DeploymentHandle and running the 64
            # concurrent callers on its own event loop (the handle routes on that loop; nothing crosses
            # threads per call).
            loadgen = ray.remote(num_cpus=0)(_LoadGen).remote(model_units)

            def handle_case(n_units: int):
                return tuple(ray.get(loadgen.run.remote("bench", n_units, 64, args.seconds, args.rounds)))

            for bs, tag in ((args.max_batch_size, "on"), (1, "off")):
                if bs != args.max_batch_size or tag == "off":
                    deploy(bs)
                info = handle.info.remote().result()
                assert info["max_batch_size"] == bs, info
                results[f"a_handle_1unit_batch_{tag}"] = report(
                    f"(a) handle, 1 unit, 64 callers, batch {tag}",
                    handle_case(1),
                )
                results[f"c_handle_100unit_batch_{tag}"] = report(
                    f"(c) handle, 100 units, 64 callers, batch {tag}",
                    handle_case(100),
                )
        # (b) as in production: the API ingress alone (configs/serve.yaml deploys no model).
        deploy(None)
        hostport = f"{host}:{port}"
        key = {"X-API-Key": api_key}
        noop = [_raw("GET", "/healthz", hostport)]
        post = [
            _raw("POST", "/v1/forecasts", hostport, json.dumps({"units": [u]}).encode(), key)
            for u in fc_units[:64]
        ]
        get = [_raw("GET", f"/v1/forecasts/{u}", hostport, headers=key) for u in fc_units[:64]]
        for raw in (post[0], get[0]):
            status = asyncio.run(_Conn(host, port).request(raw))
            if status != 200:
                raise RuntimeError(f"a 1-unit forecast of the bench tenant answered {status}, expected 200")
        for clients in (64, 16):
            cases = {"noop": noop, "forecast_post": post, "forecast_get": get}
            out = asyncio.run(_http_interleaved(host, port, cases, clients, args.seconds, args.rounds))
            for name, label in (
                ("noop", "no-op GET /healthz"),
                ("forecast_post", "1-unit POST /v1/forecasts"),
                ("forecast_get", "1-unit GET /v1/forecasts/{unit}"),
            ):
                results[f"b_http_{name}_{clients}"] = report(
                    f"(b) HTTP {label}, {clients} clients", out[name]
                )
    finally:
        shutdown()

    a_ratio = c_ratio = float("nan")
    if args.part == "all":
        a_ratio = results["a_handle_1unit_batch_on"]["rps"] / max(
            results["a_handle_1unit_batch_off"]["rps"], 1e-9
        )
        c_ratio = results["c_handle_100unit_batch_on"]["rps"] / max(
            results["c_handle_100unit_batch_off"]["rps"], 1e-9
        )
    ratios = {
        f"{kind}_{clients}": round(
            results[f"b_http_forecast_{kind}_{clients}"]["rps"]
            / max(results[f"b_http_noop_{clients}"]["rps"], 1e-9),
            3,
        )
        for kind in ("post", "get")
        for clients in (64, 16)
    }
    b_post, b_get = ratios["post_64"], ratios["get_64"]
    p99_post, p99_get = (
        results["b_http_forecast_post_16"]["p99_ms"],
        results["b_http_forecast_get_16"]["p99_ms"],
    )
    results.update(
        a_speedup=round(a_ratio, 2) if args.part == "all" else None,
        a_target_met=a_ratio >= 4.0 if args.part == "all" else None,
        b_over_noop=ratios,
        b_target_met={"post": b_post >= 0.8, "get": b_get >= 0.8},
        b_p99_16_ms={"post": p99_post, "get": p99_get},
        b_p99_target_met={"post": p99_post <= 300.0, "get": p99_get <= 300.0},
        c_speedup=round(c_ratio, 2) if args.part == "all" else None,
    )
    if args.part == "all":
        print(f"(a) batching on / off, 1 unit:    {a_ratio:.2f}x (target >= 4x)")
    print(
        f"(b) 1-unit forecasts / no-op, 64 clients: POST {b_post:.2f}, GET {b_get:.2f} (target >= 0.80; "
        f"16 clients: POST {ratios['post_16']:.2f}, GET {ratios['get_16']:.2f}); "
        f"p99 under 16 clients POST {p99_post:.0f} ms, GET {p99_get:.0f} ms (target <= 300)"
    )
    if args.part == "all":
        print(f"(c) batching on / off, 100 units:  {c_ratio:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
