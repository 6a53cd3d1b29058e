"""The model deployment's class and the ingress coalescer in-process (no Ray cluster).

Loading, warm-up, swap decisions and output checks of the model class; the coalescer's merging and failure
propagation. Batching itself needs a Serve replica and is tested in test_serve_app.py.
"""

from __future__ import annotations

import asyncio

import pytest

SPEC = {"n_units": 30, "lookback": 12, "horizon": 4, "hidden": 16, "depth": 1}
_VERSION = {"current": "1"}


def resolve_version() -> str:
    """Resolver named by import path in the configs below."""
    return _VERSION["current"]


def load_versioned(version: str):
    """Loader: version "1" and "2" are different weights of the same network."""
    from tests.serving._mlp_predictor import make_mlp_predictor

    return make_mlp_predictor(SPEC, seed=int(version), version=version)


def _model(**cfg):
    from serving.deploy._model import ForecastModel

    base = {
        "loader": "tests.serving.deploy.test_serve_units:load_versioned",
        "resolver": "tests.serving.deploy.test_serve_units:resolve_version",
        "watch_interval_s": 0,
        "max_batch_size": 16,
        "batch_wait_timeout_s": 0.02,
        "warmup_units": 2,
    }
    return ForecastModel.func_or_class({**base, **cfg})


def test_constructor_warms_up_and_a_failed_swap_keeps_the_current_version():
    _VERSION["current"] = "1"
    m = _model()
    assert m.info()["version"] == "1" and m.info()["max_batch_size"] == 16
    _VERSION["current"] = "not-a-number"  # the loader fails on it
    with pytest.raises(ValueError):
        m.maybe_swap()
    assert m.info()["version"] == "1" and m.info()["swaps"] == 0
    _VERSION["current"] = "2"
    assert m.maybe_swap() and m.info()["version"] == "2" and m.info()["swaps"] == 1
    assert not m.maybe_swap(), "no swap when the alias did not move"
    with pytest.raises(ValueError, match="unknown keys"):
        m.reconfigure({"max_batch_sise": 3})
    m.reconfigure({"max_batch_size": 1})
    assert m.info()["max_batch_size"] == 1


def test_output_shape_is_checked_against_the_input():
    from serving.deploy._model import ForecastModel

    p = load_versioned("1")
    check = ForecastModel.func_or_class._check
    check(p, ["u00001", "u00002"], p.predict(["u00001", "u00002"]))
    with pytest.raises(RuntimeError, match="shape"):
        check(p, ["u00001", "u00002"], p.predict(["u00001"]))


def test_a_loader_returning_something_else_is_refused():
    with pytest.raises(TypeError, match="Predictor"):
        _model(loader="numpy:zeros", loader_kwargs={"shape": 3}, resolver=None)


def test_coalescer_merges_concurrent_calls_answers_in_order_and_fails_every_waiter():
    from serving.deploy._ingress import Coalescer

    calls: list[list[int]] = []

    async def call_many(reqs):
        calls.append(list(reqs))
        await asyncio.sleep(0.01)
        if -1 in reqs:
            raise RuntimeError("boom")
        return [r * 10 for r in reqs]

    async def go():
        c = Coalescer(call_many, max_in_flight=1)
        answers = await asyncio.gather(*[c.submit(i) for i in range(20)])
        c2 = Coalescer(call_many, max_in_flight=1)
        failed = await asyncio.gather(
            c2.submit(-1), *[c2.submit(i) for i in range(3)], return_exceptions=True
        )
        return c, answers, failed

    c, answers, failed = asyncio.run(go())
    assert answers == [i * 10 for i in range(20)]
    assert c.calls < 20 and c.items == 20, (c.calls, c.items)
    assert sum(isinstance(f, RuntimeError) for f in failed) >= 1
    assert all(isinstance(f, RuntimeError | int) for f in failed)
