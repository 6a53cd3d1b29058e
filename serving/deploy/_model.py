"""The batched model deployment: one forward pass for many concurrent forecast requests.

Each replica loads the predictor named by its config (the registry's ``champion`` by default), forecasts a few
units in its constructor so no user request pays the first-call cost, and then serves ``forecast(unit_ids)``
calls: concurrent calls are gathered by ``@serve.batch`` into one list, the predictor runs once on all their
units in a worker thread (the event loop keeps accepting requests meanwhile), and the output is split back,
its length checked against the input.

Hot swap: a daemon thread asks the resolver every ``watch_interval_s`` which version the alias names; when it
moves, the new version is loaded and warmed up beside the old one, then a single reference assignment makes it
current. A batch captures the predictor it started with, so requests in flight finish on the old version and
none is dropped; the old one is released when its last batch returns.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray import serve

from serving.deploy._config import ModelDeploymentConfig
from serving.deploy._predictors import UnitPredictor, import_callable

__all__ = ["ForecastModel", "ForecastOutput"]

log = logging.getLogger("replenish.serve.model")


def ForecastOutput(version: str, quantiles: Sequence[float], values: np.ndarray) -> dict[str, Any]:  # noqa: N802
    """The result of one forecast call: ``values`` of shape ``(n_units, horizon, n_quantiles)``."""
    return {"version": version, "quantiles": tuple(quantiles), "values": values}


@serve.deployment(name="ForecastModel", ray_actor_options={"num_cpus": 0.5})
class ForecastModel:
    """Ray Serve deployment serving one predictor with request batching and alias hot swap.

    Args:
        config: a :class:`ModelDeploymentConfig` as a dict (validated here).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        cfg = ModelDeploymentConfig.model_validate(config or {})
        self._cfg = cfg
        if cfg.torch_threads:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        self._loader = import_callable(cfg.loader)
        self._resolver = import_callable(cfg.resolver) if cfg.resolver else None
        self._lock = threading.Lock()  # one swap at a time
        self._stop = threading.Event()
        self._swaps = 0
        self._swap_error: str | None = None
        self._batches = 0
        self._batched_requests = 0
        self._predictor: UnitPredictor = self._load_warm(self._resolve())
        self._apply_batching(cfg.max_batch_size, cfg.batch_wait_timeout_s)
        self._watch_interval_s = cfg.watch_interval_s
        self._watcher = threading.Thread(target=self._watch, name="alias-watch", daemon=True)
        if self._resolver is not None:
            self._watcher.start()

    # -- loading ---------------------------------------------------------------------------------------------

    def _resolve(self) -> str | None:
        if self._resolver is None:
            return None
        return str(self._resolver(**self._cfg.resolver_kwargs))

    def _load_warm(self, version: str | None) -> UnitPredictor:
        kwargs = dict(self._cfg.loader_kwargs)
        if version is not None:
            kwargs["version"] = version
        predictor = self._loader(**kwargs)
        for attr in ("version", "quantiles", "horizon", "predict", "has_unit"):
            if not hasattr(predictor, attr):
                raise TypeError(
                    f"loader {self._cfg.loader!r} returned {type(predictor).__name__}, which has no "
                    f"{attr!r}; expected a serving.deploy.UnitPredictor"
                )
        self._warmup(predictor)
        return predictor

    def _warmup(self, predictor: UnitPredictor) -> None:
        n = self._cfg.warmup_units
        if n == 0:
            return
        units_fn = getattr(predictor, "unit_ids", None)
        units = list(units_fn())[:n] if callable(units_fn) else []
        if not units:
            log.warning("model %s exposes no unit_ids(); skipping warm-up", predictor.version)
            return
        t0 = time.perf_counter()
        for size in sorted({1, len(units)}):
            self._check(predictor, units[:size], predictor.predict(units[:size]))
        log.info(
            "model %s warmed up on %d units in %.0f ms",
            predictor.version,
            len(units),
            1e3 * (time.perf_counter() - t0),
        )

    def _watch(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.25):  # short ticks so a reconfigured interval applies at once
            interval = self._watch_interval_s
            if interval <= 0 or time.monotonic() - last < interval:
                continue
            last = time.monotonic()
            try:
                self.maybe_swap()
            except Exception as exc:  # noqa: BLE001 - keep serving the current version, report the failure
                self._swap_error = f"{type(exc).__name__}: {exc}"
                log.warning("alias watch: keeping version %s: %s", self._predictor.version, exc)

    def maybe_swap(self) -> bool:
        """Swap to the version the alias names now, if it moved; returns whether it swapped.

        Loading and warm-up run on the calling thread beside the current predictor; the swap itself is one
        reference assignment, so batches already running keep the predictor they started with.
        """
        with self._lock:
            version = self._resolve()
            if version is None or version == self._predictor.version:
                return False
            new = self._load_warm(version)
            old, self._predictor = self._predictor, new
            self._swaps += 1
            self._swap_error = None
            log.info("model swapped from version %s to %s", old.version, new.version)
            return True

    async def refresh(self) -> bool:
        """Check the alias now (off the event loop) instead of waiting for the next watch tick."""
        return await asyncio.to_thread(self.maybe_swap)

    # -- batching --------------------------------------------------------------------------------------------

    def _apply_batching(self, max_batch_size: int, batch_wait_timeout_s: float) -> None:
        self._predict_batch.set_max_batch_size(max_batch_size)
        self._predict_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Change batch size, batch wait and watch interval on a running replica (Serve ``user_config``)."""
        unknown = set(user_config or {}) - set(self._cfg.user_config())
        if unknown:
            raise ValueError(
                f"user_config: unknown keys {sorted(unknown)}; allowed {sorted(self._cfg.user_config())}"
            )
        self._cfg = ModelDeploymentConfig.model_validate({**self._cfg.model_dump(), **(user_config or {})})
        self._apply_batching(self._cfg.max_batch_size, self._cfg.batch_wait_timeout_s)
        self._watch_interval_s = self._cfg.watch_interval_s

    @staticmethod
    def _check(predictor: UnitPredictor, units: Sequence[str], y: np.ndarray) -> None:
        expected = (len(units), predictor.horizon, len(predictor.quantiles))
        if getattr(y, "shape", None) != expected:
            raise RuntimeError(
                f"model {predictor.version} returned shape {getattr(y, 'shape', None)} for "
                f"{len(units)} units; expected {expected}"
            )

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def _predict_batch(self, requests: list[list[str]]) -> list[dict[str, Any]]:
        predictor = self._predictor  # the whole batch runs on one version, even if a swap happens meanwhile
        ok = [all(predictor.has_unit(u) for u in r) for r in requests]
        flat = [u for r, good in zip(requests, ok, strict=True) if good for u in r]
        y = await asyncio.to_thread(predictor.predict, flat) if flat else None
        if y is not None:
            self._check(predictor, flat, y)
        self._batches += 1
        self._batched_requests += len(requests)
        out: list[dict[str, Any]] = []
        start = 0
        for r, good in zip(requests, ok, strict=True):
            if not good:
                missing = [u for u in r if not predictor.has_unit(u)]
                out.append({"version": predictor.version, "unknown_units": missing})
                continue
            out.append(ForecastOutput(predictor.version, predictor.quantiles, y[start : start + len(r)]))
            start += len(r)
        if len(out) != len(requests):  # the batching contract: one output per input, in order
            raise RuntimeError(f"batch produced {len(out)} outputs for {len(requests)} requests")
        return out

    async def forecast(self, unit_ids: Sequence[str]) -> dict[str, Any]:
        """Quantile forecasts for ``unit_ids``, batched with concurrent calls.

        Returns:
            ``{"version", "quantiles", "values"}`` with ``values`` of shape ``(len(unit_ids), H, Q)``, or
            ``{"version", "unknown_units"}`` when some units are not known to the served version (an answer,
            not an exception, so it crosses process boundaries as plain data).

        Raises:
            ValueError: ``unit_ids`` is empty or not a list of strings.
        """
        if isinstance(unit_ids, str) or not unit_ids or not all(isinstance(u, str) for u in unit_ids):
            raise ValueError("unit_ids: expected a non-empty list of planning-unit ids (strings)")
        return await self._predict_batch(list(unit_ids))

    async def forecast_many(self, requests: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        """Several requests in one call (an ingress coalescing its callers).

        Each goes through the batch queue, so they share forward passes with each other and other callers.

        Returns:
            One :meth:`forecast` answer per request, in order.
        """
        return list(await asyncio.gather(*(self.forecast(r) for r in requests)))

    # -- introspection ---------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Version served, swaps done, last swap error and batching figures of this replica."""
        p = self._predictor
        return {
            "version": p.version,
            "quantiles": list(p.quantiles),
            "horizon": p.horizon,
            "swaps": self._swaps,
            "swap_error": self._swap_error,
            "batches": self._batches,
            "batched_requests": self._batched_requests,
            "max_batch_size": self._predict_batch._get_max_batch_size(),
            "batch_wait_timeout_s": self._predict_batch._get_batch_wait_timeout_s(),
        }

    def check_health(self) -> None:
        """Serve's health probe: a replica without a predictor is unhealthy."""
        if self._predictor is None:
            raise RuntimeError("no predictor loaded")

    def __del__(self) -> None:
        self._stop.set()
