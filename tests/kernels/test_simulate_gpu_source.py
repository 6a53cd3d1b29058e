"""The CUDA source of the GPU backend, compiled as C++ and run thread by thread on the CPU, matches Numba.

There is no GPU on the development machine, so this is how the CUDA kernel's logic (generator, alias
sampling, timing convention, policies, statistics) is checked here: the source is compiled by the host C++
compiler with small shims for the CUDA built-ins (the warp reduction becomes a plain per-thread add) and its
per-unit sums are compared with the Numba kernel's for every demand kind and policy. Skipped without g++.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest

from kernels._simulate_cpu import N_STAT
from kernels._simulate_gpu import BLOCK, RNG_CUDA_SOURCE, SIMULATE_CUDA_SOURCE
from kernels.simulate import (
    gamma_demand,
    lead_times_from_pmf,
    min_max_policy,
    negative_binomial_demand,
    normal_demand,
    order_up_to_policy,
    poisson_demand,
    prepare,
    quantile_demand,
    run_kernel,
    s_Q_policy,
    s_S_policy,
)

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs a host C++ compiler")

_SHIMS = r"""
#include <cmath>
using std::sqrt; using std::log; using std::pow; using std::floor;
#define __device__
#define __forceinline__ inline
#define __global__
struct Dim { unsigned x, y, z; };
static Dim blockIdx, threadIdx, blockDim;
static inline double __shfl_down_sync(unsigned, double v, int) { return v; }
static inline double atomicAdd(double* a, double v) { double o = *a; *a += v; return o; }
"""

_REDUCE = """        const double v = warp_sum(acc[k]);
        if ((threadIdx.x & 31) == 0) atomicAdd(out + i * N_STAT + k, v);"""


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """Build the emulator for a ring capacity; returns a callable running the kernel over all threads."""
    libs = {}

    def build(ring_cap):
        if ring_cap in libs:
            return libs[ring_cap]
        src = SIMULATE_CUDA_SOURCE
        assert _REDUCE in src
        src = src.replace(_REDUCE, "        atomicAdd(out + i * N_STAT + k, acc[k]);")
        params = re.search(r"simulate_kernel\((.*?)\)\s*\{", src, re.S).group(1)
        names = [re.findall(r"\w+", p)[-1] for p in params.split(",")]
        driver = f"""
extern "C" void run_emulated({params}, const i64 grid) {{
    blockDim.x = {BLOCK};
    for (i64 b = 0; b < grid; ++b)
        for (unsigned t = 0; t < {BLOCK}; ++t) {{
            blockIdx.x = (unsigned)b; threadIdx.x = t;
            simulate_kernel({", ".join(names)});
        }}
}}
"""
        code = (
            f"#define RING_CAP {ring_cap}\n#define N_STAT {N_STAT}\n"
            + _SHIMS
            + RNG_CUDA_SOURCE
            + src
            + driver
        )
        d = tmp_path_factory.mktemp(f"cuda_emu_{ring_cap}")
        (d / "k.cpp").write_text(code)
        subprocess.run(
            ["g++", "-O2", "-shared", "-fPIC", "-fno-fast-math", "-ffp-contract=off", "-o", str(d / "k.so"),
             str(d / "k.cpp")], check=True, capture_output=True,
        )  # fmt: skip
        libs[ring_cap] = ctypes.CDLL(str(d / "k.so"))
        return libs[ring_cap]

    def run(a):
        lib = build(a.ring_cap)
        n_units = a.S.shape[0]
        bpu = (a.n_paths + BLOCK - 1) // BLOCK
        out = np.zeros((n_units, N_STAT))
        keep = []

        def ptr(x, dtype):
            arr = np.ascontiguousarray(x, dtype=dtype)
            keep.append(arr)
            return arr.ctypes.data_as(ctypes.c_void_p)

        ll, ull = ctypes.c_longlong, ctypes.c_ulonglong
        lib.run_emulated(
            ull(int(a.seed)), ll(a.kind), ptr(a.d_off, np.int64), ptr(a.d_lo, np.int64),
            ptr(a.d_tab, np.uint32),
            ptr(a.p1, np.float64), ptr(a.p2, np.float64), ptr(a.qx, np.float64), ptr(a.qtau, np.float64),
            ll(a.qx.shape[2]), ptr(a.lt_off, np.int64), ptr(a.lt_lo, np.int64), ptr(a.lt_tab, np.uint32),
            ptr(a.supplier, np.int64), ptr(a.policy, np.int64), ptr(a.s, np.float64), ptr(a.S, np.float64),
            ptr(a.Q, np.float64), ptr(a.R, np.int64), ptr(a.net0, np.float64), ptr(a.open_orders, np.float64),
            ll(a.open_orders.shape[1]), ll(a.lost), ll(n_units), ll(a.n_paths), ll(a.n_periods),
            ll(a.burn_in),
            ll(a.n_dper), ll(bpu), out.ctypes.data_as(ctypes.c_void_p), ll(n_units * bpu),
        )  # fmt: skip
        return out

    return run


def _case(kind, policy, n=12, T=24):
    mean = np.linspace(0.4, 30.0, n)
    demand = {
        "poisson": poisson_demand(mean),
        "poisson_by_period": poisson_demand(np.outer(mean, 1 + 0.5 * np.sin(np.arange(T)))),
        "negative_binomial": negative_binomial_demand(mean, np.full(n, 0.8)),
        "normal": normal_demand(mean, 0.5 * mean),
        "gamma": gamma_demand(mean, 1.5 * mean),  # shape < 1: the boosted branch
        "quantile": quantile_demand(np.stack([0.2 * mean, mean, 2.5 * mean], axis=1), [0.1, 0.5, 0.9]),
    }[kind]
    pol = {
        "order_up_to": order_up_to_policy(np.round(mean * 5 + 2), review_period=2),
        "s_S": s_S_policy(mean * 2, mean * 5),
        "s_Q": s_Q_policy(mean * 2, mean + 1, review_period=3),
        "min_max": min_max_policy(mean * 2, mean * 4),
    }[policy]
    lt = lead_times_from_pmf(np.array([[0.1, 0.3, 0.0, 0.4, 0.2], [0, 0, 0.5, 0.5, 0]]), np.arange(n) % 2)
    return demand, lt, pol


@pytest.mark.parametrize(
    "kind", ["poisson", "poisson_by_period", "negative_binomial", "normal", "gamma", "quantile"]
)
@pytest.mark.parametrize("policy", ["order_up_to", "s_S", "s_Q", "min_max"])
def test_cuda_source_matches_numba(emulated, kind, policy):
    demand, lt, pol = _case(kind, policy)
    oo = np.zeros((demand.n_units, 2))
    oo[:, 1] = 3.0
    for lost in (False, True):
        xp, a = prepare(demand, lt, pol, n_periods=24, n_paths=150, seed=2024, lost_sales=lost, burn_in=3,
                        open_orders=oo)  # fmt: skip
        cpu = run_kernel(xp, a)
        emu = emulated(a)
        np.testing.assert_allclose(emu, cpu, rtol=1e-12, atol=1e-9, err_msg=f"{kind} {policy} lost={lost}")
