"""The CUDA source of the engine's GPU backend, compiled as C++ and run thread by thread on the CPU, matches
Numba.

There is no GPU on the development machine, so this is how the CUDA kernels' logic (generator, demand
draws, crossing orders, the Polya urn, level searches, menus, expected served units) is checked here: the
source of :mod:`kernels._policy_gpu` is compiled by the host C++ compiler with small shims for the CUDA
built-ins and every kernel's output is compared with the Numba backend's, bit for bit, for every demand
source and lead-time model. Skipped without g++. On a GPU, ``test_policy_gpu.py`` compares the device itself.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest

from kernels import HistoryDemand, QuantileDemand, fill_grid, order_up_to_levels, policy_samples, service_menu
from kernels import _policy_cpu as cpu
from kernels._policy_gpu import POLICY_CUDA_SOURCE
from kernels.policy import _HISTORY, _QUANTILES, _inverse_table

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs a host C++ compiler")

_PRELUDE = r"""
#include <cmath>
using std::sqrt; using std::log; using std::cos; using std::floor; using std::ceil;
typedef unsigned long long u64;
typedef long long i64;
#define __device__
#define __forceinline__ inline
#define __global__
static i64 g_tid;
static inline i64 thread_index() { return g_tid; }
"""

_CTYPES = {"i64": ctypes.c_longlong, "u64": ctypes.c_ulonglong}
_PTR = {"float": np.float32, "double": np.float64, "i64": np.int64}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """Compile the CUDA source for the host; return ``call(kernel, n_threads, *args)``."""
    kernels = re.findall(r'extern "C" __global__ void (\w+)\((.*?)\)\s*\{', POLICY_CUDA_SOURCE, re.S)
    drivers, sigs = [], {}
    for name, params in kernels:
        plist = [p.strip() for p in params.split(",")]
        names = [re.findall(r"\w+", p)[-1] for p in plist]
        sigs[name] = plist
        drivers.append(
            f'extern "C" void run_{name}({", ".join(plist)}, i64 n_threads) {{\n'
            f"    for (g_tid = 0; g_tid < n_threads; ++g_tid) {name}({', '.join(names)});\n}}\n"
        )
    d = tmp_path_factory.mktemp("policy_cuda_emu")
    (d / "k.cpp").write_text(_PRELUDE + POLICY_CUDA_SOURCE + "\n".join(drivers))
    subprocess.run(
        ["g++", "-O2", "-shared", "-fPIC", "-fno-fast-math", "-ffp-contract=off", "-o", str(d / "k.so"),
         str(d / "k.cpp")], check=True, capture_output=True,
    )  # fmt: skip
    lib = ctypes.CDLL(str(d / "k.so"))

    def call(name, n_threads, *args):
        keep, cargs = [], []
        for p, a in zip(sigs[name], args, strict=True):
            ctype = p.replace("const", "").split()[0]
            if "*" in p:
                assert (
                    isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype == _PTR[ctype.rstrip("*")]
                ), p
                keep.append(a)
                cargs.append(a.ctypes.data_as(ctypes.c_void_p))
            else:
                cargs.append(_CTYPES[ctype](int(a)))
        getattr(lib, f"run_{name}")(*cargs, ctypes.c_longlong(n_threads))

    return call


def _emulated_paths(emu, demand, pmf, review, n_paths, seed, crossing, counts=None, unit_ids=None):
    """The device kernel's paths for the inputs ``policy_samples`` would give it (one chunk, full scratch)."""
    n = demand.n_units
    weight = np.ascontiguousarray(counts if counts is not None else pmf, dtype=np.float64)
    k_max = (weight.shape[1] - 1 - np.argmax(weight[:, ::-1] > 0, axis=1)).astype(np.int64)
    ids = np.arange(n, dtype=np.int64) if unit_ids is None else np.ascontiguousarray(unit_ids, np.int64)
    if isinstance(demand, HistoryDemand):
        kind, pool = _HISTORY, np.ascontiguousarray(demand.pool, np.float64)
        plen, factor = np.ascontiguousarray(demand.pool_len, np.int64), np.ascontiguousarray(demand.factor)
        se = demand.mean_standard_error() if demand.mean_uncertainty else np.zeros(n)
        values, lut_lo, lut_w = np.zeros((1, 1, 1), np.float32), np.zeros(1, np.int64), np.zeros(1)
    else:
        kind, values = _QUANTILES, np.ascontiguousarray(demand.values, np.float32)
        lut_lo, lut_w = _inverse_table(np.asarray(demand.levels, np.float64))
        pool, plen, factor, se = np.zeros((1, 1)), np.ones(n, np.int64), np.ones((1, 1)), np.zeros(n)
    out_l = np.empty((n, n_paths), np.float32)
    out_lr = np.empty((n, n_paths), np.float32)
    urn = counts is not None
    scratch = np.zeros(n * n_paths * weight.shape[1] if urn else 1)
    rev = np.ascontiguousarray(np.broadcast_to(np.asarray(review, np.int64), (n,)))
    emu(
        "protection_paths_kernel", n * n_paths,
        kind, pool, pool.shape[1], plen, factor, factor.shape[1], lut_lo, np.ascontiguousarray(lut_w), values,
        values.shape[1], values.shape[2], weight, weight.shape[1], k_max, urn, rev, seed, ids,
        np.ascontiguousarray(se, np.float64), crossing, out_l, out_lr, n_paths, 0, n, scratch,
    )  # fmt: skip
    return out_l, out_lr


def _history(n=7, w=20, h=5, seed=3):
    rng = np.random.default_rng(seed)
    pool = np.where(rng.random((n, w)) < 0.4, 0.0, rng.gamma(1.5, 4.0, (n, w)))
    plen = np.array([w, w - 3, 0, 1, w, 5, w][:n], dtype=np.int64)
    factor = 1.0 + 0.5 * (rng.random((n, h)) < 0.3)
    return HistoryDemand(pool, plen, factor)


def _quantiles(n=7, h=5):
    base = np.linspace(0.5, 30.0, n)[:, None, None] * (1 + 0.2 * np.arange(h))[None, :, None]
    values = (base * np.array([0.2, 0.6, 1.0, 1.6, 2.4])).astype(np.float32)
    values[0, 1, 2] = values[0, 1, 1] - 0.5  # one crossing pair: sorted out the same way on both sides
    return QuantileDemand(np.array([0.05, 0.25, 0.5, 0.75, 0.95]), values)


def _lead_times(n=7):
    pmf = np.zeros((n, 9))
    pmf[:, 1], pmf[:, 2], pmf[:, 4], pmf[:, 8] = 0.3, 0.4, 0.2, 0.1
    pmf[1] = np.eye(9)[0]  # lead time 0
    counts = pmf * 26 + np.r_[0.0, 0.5, 1.0, 0.5, 0.5, 0.2, 0.0, 0.0, 0.1]
    return pmf, counts


@pytest.mark.parametrize("source", ["history", "quantiles"])
@pytest.mark.parametrize("crossing", [True, False])
@pytest.mark.parametrize("urn", [True, False])
@pytest.mark.parametrize("review", [1, 3])
def test_paths_kernel_matches_numba_bit_for_bit(emu, source, crossing, urn, review):
    demand = _history() if source == "history" else _quantiles()
    pmf, counts = _lead_times()
    ids = np.arange(100, 107)
    kw = {"lead_time_counts": counts if urn else None, "unit_ids": ids, "crossing": crossing}
    ref = policy_samples(demand, pmf, review, 300, 2024, **kw)
    if source == "quantiles":  # the CPU path sorts crossing quantiles first; give the emulator the same
        demand = QuantileDemand(demand.levels, np.maximum.accumulate(demand.values, axis=2))
    out_l, out_lr = _emulated_paths(
        emu, demand, pmf, review, 300, 2024, crossing, counts if urn else None, ids
    )
    np.testing.assert_array_equal(out_l, ref.d_l)
    np.testing.assert_array_equal(out_lr, ref.d_lr)


@pytest.mark.parametrize("source", ["history", "quantiles"])
@pytest.mark.parametrize("crossing", [True, False])
@pytest.mark.parametrize("n_paths", [1, 63, 65])
def test_paths_kernel_lanes_match_one_path_loop_for_any_path_count_and_mixed_reviews(
    emu, source, crossing, n_paths
):
    """The CPU runs a unit's paths in lanes of 64; the emulated CUDA loop one path per thread: a partial lane,
    a lane and one path more, and review periods that differ by unit (so lanes of a unit look at different
    cycle positions) give the same bits. One quantile level: the inversion's upper neighbour is the level
    itself."""
    if source == "history":
        demand = _history()
    else:
        q = _quantiles()
        demand = QuantileDemand(q.levels[2:3], np.ascontiguousarray(q.values[:, :, 2:3]))
    pmf, counts = _lead_times()
    review = np.array([1, 2, 3, 4, 5, 2, 7])
    kw = {"lead_time_counts": counts, "crossing": crossing}
    ref = policy_samples(demand, pmf, review, n_paths, 99, **kw)
    out_l, out_lr = _emulated_paths(emu, demand, pmf, review, n_paths, 99, crossing, counts)
    np.testing.assert_array_equal(out_l, ref.d_l)
    np.testing.assert_array_equal(out_lr, ref.d_lr)
    assert (ref.d_lr >= ref.d_l).all() and ref.d_lr.sum() > 0


@pytest.mark.parametrize("n_bins", [6, 13, 20])
@pytest.mark.parametrize("review", [1, 2])
@pytest.mark.parametrize("urn", [True, False])
def test_paths_kernel_matches_one_path_loop_for_long_lead_times(emu, n_bins, review, urn):
    """The CPU's urn scan sums a fixed 8 or 16 bins when the longest lead time allows (the bins past it
    masked) and every bin beyond that; with fixed weights it compares with the unit's cumulative weights.
    Lead times up to 5, 12 and 19 periods (each scan), a unit with lead time 0 and one whose distribution has
    gaps give the bits of the emulated one-path-per-thread loop."""
    rng = np.random.default_rng(n_bins)
    n = 6
    counts = rng.integers(0, 6, (n, n_bins)).astype(float) + rng.random((n, n_bins)) * (
        rng.random((n, n_bins)) < 0.5
    )
    counts[:, -1] += 0.25  # the longest lead time is possible for every unit but one
    counts[0] = np.eye(n_bins)[0] * 3.0  # lead time 0 always
    counts[1, 1::2] = 0.0  # gaps
    counts[1, 0] += 1.0
    pmf = counts / counts.sum(axis=1, keepdims=True)
    demand = _history(n=n)
    kw = {"lead_time_counts": counts if urn else None, "crossing": True}
    ref = policy_samples(demand, pmf, review, 130, 5, **kw)
    out_l, out_lr = _emulated_paths(emu, demand, pmf, review, 130, 5, True, counts if urn else None)
    np.testing.assert_array_equal(out_l, ref.d_l)
    np.testing.assert_array_equal(out_lr, ref.d_lr)
    assert (ref.d_l[4:] > 0).any(axis=1).all()  # units with demand: earlier orders outstanding count


def _sorted_samples():
    pmf, counts = _lead_times()
    smp = policy_samples(_history(), pmf, 2, 257, 7, lead_time_counts=counts)
    order_up_to_levels(smp, 0.9, np.zeros(7), in_place=True)
    return dataclasses.replace(smp, is_sorted=True)


def test_levels_kernel_matches_numba_bit_for_bit(emu):
    smp = _sorted_samples()
    n, m = smp.d_l.shape
    target = np.linspace(0.8, 0.99, n)
    position = np.linspace(-3.0, 40.0, n)
    lot = np.r_[0.0, 0.0, 5.0, 12.0, 0.0, 3.0, 1.0]
    ql = np.array([0.05, 0.5, 0.9, 0.95])
    ref = order_up_to_levels(smp, target, position, lot, tuple(ql))
    outs = [np.zeros(n) for _ in range(7)]
    q_lr, q_l = np.zeros((n, 4)), np.zeros((n, 4))
    emu("levels_kernel", n, smp.d_l, smp.d_lr, m, target, position, lot, *outs, ql, 4, q_lr, q_l, 0, n,
        np.zeros(n * 2 * (m + 1)))  # fmt: skip
    names = ["order_up_to", "fill_rate_at_level", "fill_rate_no_order", "stockout_probability",
             "mean_protection_demand", "mean_review_demand", "expected_on_hand_at_level"]  # fmt: skip
    for name, got in zip(names, outs, strict=True):
        np.testing.assert_array_equal(got, getattr(ref, name), err_msg=name)
    np.testing.assert_array_equal(q_lr, ref.protection_quantiles)
    np.testing.assert_array_equal(q_l, ref.lead_time_quantiles)


def test_menu_and_served_kernels_match_numba_bit_for_bit(emu):
    smp = _sorted_samples()
    n, m = smp.d_l.shape
    lot = np.r_[0.0, 0.0, 5.0, 12.0, 0.0, 3.0, 1.0]
    taus = fill_grid(0.8)
    ref = service_menu(smp, lot, taus)
    s, f, h = (np.zeros((n, taus.shape[0])) for _ in range(3))
    w = np.zeros(n)
    emu("menu_kernel", n, smp.d_l, smp.d_lr, m, lot, taus, taus.shape[0], s, f, h, w, 0, n,
        np.zeros(n * 2 * (m + 1)))  # fmt: skip
    for got, want in ((s, ref.order_up_to), (f, ref.fill_rate), (h, ref.on_hand), (w, ref.weight)):
        np.testing.assert_array_equal(got, want)

    unit_of = np.repeat(np.arange(n), 3).astype(np.int64)
    y = np.tile([0.0, 7.5, 40.0], n)
    want_sorted = np.empty(unit_of.shape[0])
    units = np.arange(n, dtype=np.int64)
    starts = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
    cpu.served_sorted(smp.d_lr, units, starts, y, want_sorted)
    got = np.zeros_like(want_sorted)
    emu("served_sorted_kernel", n, smp.d_lr, m, units, starts, y, got, 0, n, np.zeros(n * (m + 1)))
    np.testing.assert_array_equal(got, want_sorted)
    want = np.empty_like(want_sorted)
    cpu.served(smp.d_lr, unit_of, y, want)
    got = np.zeros_like(want)
    emu("served_kernel", unit_of.shape[0], smp.d_lr, m, unit_of, y, got, unit_of.shape[0])
    np.testing.assert_array_equal(got, want)
