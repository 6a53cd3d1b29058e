"""Serving throughput and latency on loopback: batching on versus off, HTTP forecasts versus a no-op endpoint.

One local Ray Serve instance, one application (model deployment + API ingress), the same replicas for every
case; batching is switched with the model deployment's ``user_config`` (a reconfigure, not a restart).

Cases (each: median throughput over ``--rounds`` windows of ``--seconds``; p50/p99 over all requests):
  (a) 1-unit forecasts from 64 concurrent in-cluster callers (an async Ray actor) through a DeploymentHandle,
      batching on vs off (max_batch_size 1). Target: on >= 4x off.
  (b) over HTTP from 64 keep-alive clients: 1-unit forecasts beside the app's no-op endpoint (``/healthz``).
      Target: forecasts/s >= 80% of no-op requests/s; and p99 of a 1-unit forecast <= 300 ms under 16 clients.
  (c) 100-unit requests from 64 in-cluster callers, batching on vs off (reported).

Model: ``--model tft`` serves the registered champion TFT (``training``; trained here when ``--train`` is
given
and none is registered), ``--model mlp`` a small real torch quantile network (the stand-in while the TFT is
not
available). The last line printed is one JSON object with the figures.

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


async def _run_rounds(make_call, concurrency: int, seconds: float, rounds: int, warmup_s: float = 1.0):
    """Run ``concurrency`` loops of ``make_call()``; returns (median req/s, p50 ms, p99 ms, failures)."""
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

    await asyncio.gather(*[worker(time.perf_counter() + warmup_s, None) for _ in range(concurrency)])
    for _ in range(rounds):
        sink: list[float] = []
        t_start = time.perf_counter()
        await asyncio.gather(*[worker(t_start + seconds, sink) for _ in range(concurrency)])
        rates.append(len(sink) / (time.perf_counter() - t_start))
        lat += sink
    p50, p99 = _percentiles(lat)
    return statistics.median(rates), p50, p99, failures


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


async def _http_case(host, port, raw: bytes, clients: int, seconds: float, rounds: int):
    conns = [_Conn(host, port) for _ in range(clients)]
    it = iter(range(10**12))

    pool = asyncio.Queue()
    for c in conns:
        pool.put_nowait(c)

    async def call():
        next(it)
        c = await pool.get()
        try:
            return await c.request(raw) == 200
        except (ConnectionError, asyncio.IncompleteReadError):
            c.writer = None
            return False
        finally:
            pool.put_nowait(c)

    return await _run_rounds(call, clients, seconds, rounds)


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


def _model_args(
    kind: str, home: Path, tracking_uri: str | None, model_name: str
) -> tuple[dict, list[str], str]:
    if kind == "mlp":
        spec = {"n_units": 350, "lookback": 36, "horizon": 6, "hidden": 64, "depth": 2}
        return (
            {
                "loader": "serving.deploy:make_mlp_predictor",
                "resolver": None,
                "loader_kwargs": {"spec": spec, "seed": 0, "version": "mlp-standin"},
            },
            [f"u{i:05d}" for i in range(350)],
            "QuantileMLP stand-in (hidden 64, 350 units)",
        )
    kw = {"model_name": model_name, "tracking_uri": tracking_uri}
    from serving.deploy._predictors import load_tft_predictor

    units = load_tft_predictor(version="champion", **kw).unit_ids()
    return (
        {
            "loader": "serving.deploy:load_tft_predictor",
            "loader_kwargs": kw,
            "resolver": "serving.deploy:mlflow_alias_version",
            "resolver_kwargs": {**kw, "alias": "champion"},
        },
        units,
        f"TFT champion of {model_name}",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["auto", "tft", "mlp"], default="auto")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-wait-s", type=float, default=0.05)
    ap.add_argument("--home", type=Path, default=None, help="REPLENISH_HOME holding the registry (tft)")
    args = ap.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.home:
        os.environ["REPLENISH_HOME"] = str(args.home.resolve())
    else:
        os.environ.setdefault("REPLENISH_HOME", tempfile.mkdtemp(prefix="rp-bench-home-"))
    from features.settings import get_settings

    settings = get_settings()
    kind = args.model
    if kind == "auto":
        try:
            from serving.deploy._predictors import mlflow_alias_version

            mlflow_alias_version(settings.model_name, "champion", settings.mlflow_tracking_uri)
            kind = "tft"
        except Exception:  # noqa: BLE001 - no champion registered in this home: use the stand-in
            kind = "mlp"
    model_cfg, units, model_desc = _model_args(
        kind, settings.home, settings.mlflow_tracking_uri, settings.model_name
    )

    from features.store._db import make_engine, session_scope
    from features.store._migrate import migrate
    from workflow.access import create_key, ensure_tenant

    engine = make_engine(settings.database_url)
    migrate(engine)
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

    def deploy(max_batch_size: int):
        app_args = {
            "model": {
                **model_cfg,
                "max_batch_size": max_batch_size,
                "batch_wait_timeout_s": args.batch_wait_s,
                "max_ongoing_requests": 512,
                "max_queued_requests": -1,
                "torch_threads": 1,
                "ray_actor_options": {"num_cpus": 1},
            },
            "api": {
                "settings": {"home": str(settings.home)},
                "max_ongoing_requests": 256,
                "max_queued_requests": -1,
                "ray_actor_options": {"num_cpus": 1},
            },
        }
        run_app(build_app(app_args), name="bench", route_prefix="/")

    results: dict = {
        "bench": "serving",
        "model": model_desc,
        "max_batch_size": args.max_batch_size,
        "batch_wait_s": args.batch_wait_s,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    try:
        t0 = time.perf_counter()
        deploy(args.max_batch_size)
        print(f"serve: app up in {time.perf_counter() - t0:.1f} s on http://{host}:{port} ({model_desc})")
        handle = serve.get_deployment_handle("ForecastModel", app_name="bench")

        # The in-cluster callers: one async Ray actor holding a DeploymentHandle and running the 64 concurrent
        # callers on its own event loop (the handle routes on that loop; nothing crosses threads per call).
        loadgen = ray.remote(num_cpus=0)(_LoadGen).remote(units)

        def handle_case(n_units: int):
            return tuple(ray.get(loadgen.run.remote("bench", n_units, 64, args.seconds, args.rounds)))

        def report(name, r):
            rate, p50, p99, fail = r
            print(f"{name:<44s} {rate:9.1f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   failed {fail}")
            return {"rps": round(rate, 1), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "failed": fail}

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
        deploy(args.max_batch_size)
        assert handle.info.remote().result()["max_batch_size"] == args.max_batch_size

        noop = _raw("GET", "/healthz", f"{host}:{port}")
        fc = _raw(
            "POST",
            "/v1/forecasts",
            f"{host}:{port}",
            json.dumps({"units": [units[0]]}).encode(),
            {"X-API-Key": api_key},
        )
        results["b_http_noop_64"] = report(
            "(b) HTTP no-op /healthz, 64 clients",
            asyncio.run(_http_case(host, port, noop, 64, args.seconds, args.rounds)),
        )
        results["b_http_forecast_64"] = report(
            "(b) HTTP 1-unit forecast, 64 clients",
            asyncio.run(_http_case(host, port, fc, 64, args.seconds, args.rounds)),
        )
        results["b_http_forecast_16"] = report(
            "(b) HTTP 1-unit forecast, 16 clients",
            asyncio.run(_http_case(host, port, fc, 16, args.seconds, args.rounds)),
        )
    finally:
        shutdown()

    a_ratio = results["a_handle_1unit_batch_on"]["rps"] / max(
        results["a_handle_1unit_batch_off"]["rps"], 1e-9
    )
    c_ratio = results["c_handle_100unit_batch_on"]["rps"] / max(
        results["c_handle_100unit_batch_off"]["rps"], 1e-9
    )
    b_ratio = results["b_http_forecast_64"]["rps"] / max(results["b_http_noop_64"]["rps"], 1e-9)
    results.update(
        a_speedup=round(a_ratio, 2),
        a_target_met=a_ratio >= 4.0,
        b_forecast_over_noop=round(b_ratio, 3),
        b_target_met=b_ratio >= 0.8,
        b_p99_16_ms=results["b_http_forecast_16"]["p99_ms"],
        b_p99_target_met=results["b_http_forecast_16"]["p99_ms"] <= 300.0,
        c_speedup=round(c_ratio, 2),
    )
    print(f"(a) batching on / off, 1 unit:    {a_ratio:.2f}x (target >= 4x)")
    print(
        f"(b) forecasts / no-op, 64 clients: {b_ratio:.2f} (target >= 0.80); "
        f"p99 under 16 clients {results['b_http_forecast_16']['p99_ms']:.0f} ms (target <= 300)"
    )
    print(f"(c) batching on / off, 100 units:  {c_ratio:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
