"""CuPy (CUDA) backend of the policy simulation engine: the twin of :mod:`kernels._policy_cpu`.

The CUDA source below is the Numba loops written out in C (one path per thread where Numba runs a unit's
paths in lanes, :mod:`kernels._paths_cpu`, with its loops fused and reordered for vector code), with the same
floating-point operations in the same order for every path (compiled with
``--fmad=false`` so no multiply-add is fused where Numba rounds twice), with the same counter-based
SplitMix64 draws: a seed gives the same paths, levels and menus as the CPU up to the last bit of a
``log``/``cos`` (the Box-Muller draw of a history's mean error).
``tests/kernels/test_policy_gpu_source.py`` compiles this source with the host C++ compiler and compares it
with Numba bit for bit on every machine; ``tests/kernels/test_policy_gpu.py`` (``gpu`` marker) compares the
device with the CPU.

One thread per (unit, path) for the paths; one thread per unit for level searches and menus (sorting is
CuPy's). Kernels that need scratch memory (the Polya urn's weights, the suffix sums) run over chunks of units
so the scratch stays under :data:`SCRATCH_BYTES`. The group-fill choice is vectorised CuPy (its group sums
are reduced in another order than the CPU's, so allocations agree to rounding). CuPy is reached only through
:func:`kernels._backend.cupy_module`; compiled modules are cached per device.
"""

from __future__ import annotations

import functools
from typing import Any

from kernels._backend import cupy_module

__all__ = [
    "BLOCK",
    "POLICY_CUDA_PRELUDE",
    "POLICY_CUDA_SOURCE",
    "choose",
    "levels",
    "menu",
    "protection_paths",
    "served",
    "served_sorted",
]

#: Threads per block.
BLOCK = 128
#: Upper bound of the scratch memory one launch uses (urn weights, suffix sums).
SCRATCH_BYTES = 1 << 28

#: Device prelude: types and the thread index (the host emulator in the tests supplies its own).
POLICY_CUDA_PRELUDE = r"""
typedef unsigned long long u64;
typedef long long i64;
__device__ __forceinline__ i64 thread_index() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
"""

#: The engine's kernels (C++ that nvcc and g++ both compile, given a prelude).
POLICY_CUDA_SOURCE = r"""
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define MIX1 0xBF58476D1CE4E5B9ULL
#define MIX2 0x94D049BB133111EBULL
#define LUT_BITS 12
#define N_LOT 4
#define PI_VALUE 3.141592653589793
#define PD_ARGS pool, W, m, factor, Hf, lut_lo, lut_w, values, Hv, Q

__device__ __forceinline__ u64 fmix(u64 z) {
    z = (z ^ (z >> 30)) * MIX1;
    z = (z ^ (z >> 27)) * MIX2;
    return z ^ (z >> 31);
}

__device__ __forceinline__ double unit_uniform(u64 bits) {
    return ((double)(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

__device__ double mean_multiplier(u64 key, double se) {
    if (se <= 0.0) return 1.0;
    const u64 bits = fmix(key);
    const double u1 = ((double)(bits >> 32) + 0.5) * (1.0 / 4294967296.0);
    const double u2 = ((double)(bits & 0xFFFFFFFFULL) + 0.5) * (1.0 / 4294967296.0);
    const double z = sqrt(-2.0 * log(u1)) * cos(2.0 * PI_VALUE * u2);
    const double v = 1.0 + se * z;
    return (0.0 > v) ? 0.0 : v;
}

// the first bin whose cumulative weight reaches target, else k_max: the bins below it (the CPU's scan)
__device__ i64 lead_time(const double* weight, double target, i64 k_max) {
    double acc = 0.0;
    i64 lt = 0;
    for (i64 b = 0; b < k_max; ++b) {
        acc += weight[b];
        lt += acc < target ? 1 : 0;
    }
    return lt;
}

__device__ double period_demand(i64 kind, u64 bits, i64 i, i64 j, const double* pool, i64 W, u64 m,
                                const double* factor, i64 Hf, const i64* lut_lo, const double* lut_w,
                                const float* values, i64 Hv, i64 Q) {
    if (kind == 0) {
        const u64 e = ((bits >> 32) * m) >> 32;
        return pool[i * W + (i64)e] * factor[i * Hf + (j < Hf - 1 ? j : Hf - 1)];
    }
    const u64 g = bits >> (64 - LUT_BITS);
    const i64 lo = lut_lo[g];
    const double w = lut_w[g];
    const float* row = values + (i * Hv + (j < Hv - 1 ? j : Hv - 1)) * Q;
    double d = (double)row[lo];
    if (w != 0.0) {
        const float step = row[lo + 1] - row[lo];
        d += w * (double)step;
    }
    return d > 0.0 ? d : 0.0;
}

extern "C" __global__ void protection_paths_kernel(
        i64 kind, const double* pool, i64 W, const i64* pool_len, const double* factor, i64 Hf,
        const i64* lut_lo, const double* lut_w, const float* values, i64 Hv, i64 Q,
        const double* lt_weight, i64 K, const i64* lt_k_max, i64 urn, const i64* review, u64 seed,
        const i64* unit_ids, const double* mean_se, i64 crossing, float* out_l, float* out_lr,
        i64 n_paths, i64 unit0, i64 n_chunk, double* scratch) {
    const i64 tid = thread_index();
    if (tid >= n_chunk * n_paths) return;
    const i64 i = unit0 + tid / n_paths;
    const i64 path = tid % n_paths;
    const u64 ukey = fmix(seed ^ fmix((u64)unit_ids[i] + GOLDEN));
    const u64 m = kind == 0 ? (u64)pool_len[i] : 1ULL;
    const i64 r_len = review[i];
    const i64 k_max = lt_k_max[i];
    const double* w0 = lt_weight + i * K;
    double w0_sum = 0.0;
    for (i64 b = 0; b < K; ++b) w0_sum += w0[b];
    if (m == 0) {
        out_l[i * n_paths + path] = 0.0f;
        out_lr[i * n_paths + path] = 0.0f;
        return;
    }
    const u64 key = fmix(ukey + (u64)path * MIX2);
    double* w = (double*)w0;
    if (urn) {
        w = scratch + tid * K;
        for (i64 b = 0; b < K; ++b) w[b] = w0[b];
    }
    double tot = w0_sum;
    double d_l = 0.0;
    double d_lr = 0.0;
    if (crossing) {
        const i64 r = (i64)((key >> 32) % (u64)r_len);
        u64 c = 1ULL;
        for (i64 j = 0; j < r + 1; ++j) {
            const u64 bits = fmix(key + c * GOLDEN);
            const double d = period_demand(kind, bits, i, j, PD_ARGS);
            c += 1ULL;
            if (j == 0) d_lr = d; else d_l += d;
        }
        i64 first = r + 1;
        while (first <= k_max) {
            const i64 lt = lead_time(w, unit_uniform(fmix(key + c * GOLDEN)) * tot, k_max);
            c += 1ULL;
            if (urn) {
                w[lt] += 1.0;
                tot += 1.0;
            }
            if (lt >= first) {
                for (i64 j = first; j < first + r_len; ++j) {
                    const u64 bits = fmix(key + c * GOLDEN);
                    d_l += period_demand(kind, bits, i, j, PD_ARGS);
                    c += 1ULL;
                }
            }
            first += r_len;
        }
        d_lr += d_l;
    } else {
        const i64 lt = lead_time(w, unit_uniform(key) * tot, k_max);
        for (i64 t = 0; t < lt + r_len; ++t) {
            const u64 bits = fmix(key + (u64)(t + 1) * GOLDEN);
            const double d = period_demand(kind, bits, i, t, PD_ARGS);
            if (t < lt) d_l += d;
            d_lr += d;
        }
    }
    const double mult = mean_multiplier(key, mean_se[i]);
    out_l[i * n_paths + path] = (float)(d_l * mult);
    out_lr[i * n_paths + path] = (float)(d_lr * mult);
}

__device__ i64 search_right(const float* a, i64 n, double v) {
    i64 lo = 0, hi = n;
    while (lo < hi) {
        const i64 mid = (lo + hi) >> 1;
        if ((double)a[mid] <= v) lo = mid + 1; else hi = mid;
    }
    return lo;
}

__device__ i64 search_left(const float* a, i64 n, double v) {
    i64 lo = 0, hi = n;
    while (lo < hi) {
        const i64 mid = (lo + hi) >> 1;
        if ((double)a[mid] < v) lo = mid + 1; else hi = mid;
    }
    return lo;
}

__device__ double excess(const float* sd, const double* cs, i64 n, double y) {
    const i64 j = search_right(sd, n, y);
    return (cs[j] - y * (double)(n - j)) / (double)n;
}

__device__ double fill(const float* a, const double* ca, const float* b, const double* cb, i64 n,
                       double mean_r, double y, double lot) {
    if (lot <= 0.0) return 1.0 - (excess(b, cb, n, y) - excess(a, ca, n, y)) / mean_r;
    double acc = 0.0;
    for (int g = 0; g < N_LOT; ++g) {
        const double yy = y + (g + 0.5) / N_LOT * lot;
        acc += excess(b, cb, n, yy) - excess(a, ca, n, yy);
    }
    return 1.0 - acc / N_LOT / mean_r;
}

__device__ void suffix_sums(const float* a, const float* b, i64 n, double* ca, double* cb) {
    ca[n] = 0.0;
    cb[n] = 0.0;
    for (i64 j = n - 1; j >= 0; --j) {
        ca[j] = ca[j + 1] + (double)a[j];
        cb[j] = cb[j + 1] + (double)b[j];
    }
}

__device__ double least_level(const float* a, const double* ca, const float* b, const double* cb, i64 n,
                              double mean_r, double lot, double target) {
    if (fill(a, ca, b, cb, n, mean_r, 0.0, lot) >= target) return 0.0;
    double lo = 0.0;
    double hi = (double)ceilf(b[n - 1]) + 1.0;
    while (hi - lo > 1.0) {
        const double mid = floor((lo + hi) / 2.0);
        if (fill(a, ca, b, cb, n, mean_r, mid, lot) >= target) hi = mid; else lo = mid;
    }
    return hi;
}

__device__ double sorted_quantile(const float* x, i64 n, double q) {
    const double pos = q * (double)(n - 1);
    const i64 lo = (i64)floor(pos);
    const i64 hi = lo + 1 < n - 1 ? lo + 1 : n - 1;
    const float step = x[hi] - x[lo];
    return (double)x[lo] + (pos - (double)lo) * (double)step;
}

__device__ __forceinline__ double clip01(double v) {
    const double lo = (0.0 > v) ? 0.0 : v;
    return (1.0 < lo) ? 1.0 : lo;
}

extern "C" __global__ void levels_kernel(
        const float* d_l, const float* d_lr, i64 m, const double* target, const double* position,
        const double* lot, double* out_s, double* out_fill_s, double* out_fill_ip, double* out_p_stockout,
        double* out_mean_lr, double* out_mean_r, double* out_onhand_s, const double* q_levels, i64 n_q,
        double* out_q_lr, double* out_q_l, i64 unit0, i64 n_chunk, double* scratch) {
    const i64 tid = thread_index();
    if (tid >= n_chunk) return;
    const i64 i = unit0 + tid;
    const float* a = d_l + i * m;
    const float* b = d_lr + i * m;
    for (i64 k = 0; k < n_q; ++k) {
        out_q_lr[i * n_q + k] = sorted_quantile(b, m, q_levels[k]);
        out_q_l[i * n_q + k] = sorted_quantile(a, m, q_levels[k]);
    }
    double* ca = scratch + tid * 2 * (m + 1);
    double* cb = ca + (m + 1);
    suffix_sums(a, b, m, ca, cb);
    const double mean_r = (cb[0] - ca[0]) / (double)m;
    out_mean_lr[i] = cb[0] / (double)m;
    out_mean_r[i] = mean_r;
    double s;
    if (mean_r <= 0.0) {
        s = 0.0;
        out_fill_s[i] = 1.0;
        out_fill_ip[i] = 1.0;
    } else {
        s = least_level(a, ca, b, cb, m, mean_r, lot[i], target[i]);
        out_fill_s[i] = fill(a, ca, b, cb, m, mean_r, s, lot[i]);
        out_fill_ip[i] = clip01(fill(a, ca, b, cb, m, mean_r, position[i], 0.0));
    }
    out_s[i] = s;
    out_onhand_s[i] = s - cb[0] / (double)m + excess(b, cb, m, s);
    const i64 cnt = m - search_right(a, m, position[i]);
    out_p_stockout[i] = (double)cnt / (double)m;
}

__device__ double on_hand(const float* b, const double* cb, i64 n, double s, double lot) {
    const double mean_b = cb[0] / (double)n;
    if (lot <= 0.0) return s - mean_b + excess(b, cb, n, s);
    double acc = 0.0;
    for (int g = 0; g < N_LOT; ++g) {
        const double y = s + (g + 0.5) / N_LOT * lot;
        acc += y - mean_b + excess(b, cb, n, y);
    }
    return acc / N_LOT;
}

extern "C" __global__ void menu_kernel(
        const float* d_l, const float* d_lr, i64 m, const double* lot, const double* taus, i64 n_tau,
        double* out_s, double* out_fill, double* out_onhand, double* out_mean_r, i64 unit0, i64 n_chunk,
        double* scratch) {
    const i64 tid = thread_index();
    if (tid >= n_chunk) return;
    const i64 i = unit0 + tid;
    const float* a = d_l + i * m;
    const float* b = d_lr + i * m;
    double* ca = scratch + tid * 2 * (m + 1);
    double* cb = ca + (m + 1);
    suffix_sums(a, b, m, ca, cb);
    const double mean_r = (cb[0] - ca[0]) / (double)m;
    out_mean_r[i] = mean_r;
    for (i64 k = 0; k < n_tau; ++k) {
        double s, f;
        if (mean_r <= 0.0) {
            s = 0.0;
            f = 1.0;
        } else {
            s = least_level(a, ca, b, cb, m, mean_r, lot[i], taus[k]);
            f = clip01(fill(a, ca, b, cb, m, mean_r, s, lot[i]));
        }
        out_s[i * n_tau + k] = s;
        out_fill[i * n_tau + k] = f;
        out_onhand[i * n_tau + k] = on_hand(b, cb, m, s, lot[i]);
    }
}

extern "C" __global__ void served_kernel(const float* d_lr, i64 n_paths, const i64* unit_of, const double* y,
                                         double* out, i64 n_query) {
    const i64 j = thread_index();
    if (j >= n_query) return;
    const float* row = d_lr + unit_of[j] * n_paths;
    double acc = 0.0;
    for (i64 k = 0; k < n_paths; ++k) {
        const double v = (double)row[k];
        acc += (y[j] < v) ? y[j] : v;
    }
    out[j] = acc / (double)n_paths;
}

extern "C" __global__ void served_sorted_kernel(
        const float* d_lr, i64 n_paths, const i64* units, const i64* starts, const double* y, double* out,
        i64 group0, i64 n_chunk, double* scratch) {
    const i64 tid = thread_index();
    if (tid >= n_chunk) return;
    const i64 g = group0 + tid;
    const float* row = d_lr + units[g] * n_paths;
    double* csum = scratch + tid * (n_paths + 1);
    csum[0] = 0.0;
    for (i64 k = 0; k < n_paths; ++k) csum[k + 1] = csum[k] + (double)row[k];
    for (i64 j = starts[g]; j < starts[g + 1]; ++j) {
        const i64 c = search_left(row, n_paths, y[j]);
        out[j] = (csum[c] + y[j] * (double)(n_paths - c)) / (double)n_paths;
    }
}
"""


@functools.cache
def _module(device_id: int) -> Any:
    """The compiled kernels for one device (compiled once per device, then cached by CuPy on disk)."""
    cp = cupy_module()
    with cp.cuda.Device(device_id):
        return cp.RawModule(code=POLICY_CUDA_PRELUDE + POLICY_CUDA_SOURCE, options=("--fmad=false",))


def _kernel(name: str) -> Any:
    cp = cupy_module()
    return _module(cp.cuda.runtime.getDevice()).get_function(name)


def _launch(name: str, n_threads: int, args: tuple) -> None:
    if n_threads <= 0:
        return
    grid = (n_threads + BLOCK - 1) // BLOCK
    _kernel(name)((grid,), (BLOCK,), args)


def _c(x: Any, dtype: Any) -> Any:
    return cupy_module().ascontiguousarray(x, dtype=dtype)


def _chunks(n: int, bytes_per_item: int) -> list[tuple[int, int]]:
    step = max(1, min(n, SCRATCH_BYTES // max(bytes_per_item, 1))) if n else 1
    return [(s, min(step, n - s)) for s in range(0, n, step)]


def protection_paths(kind, pool, pool_len, factor, lut_lo, lut_w, values, lt_weight, lt_k_max, urn, review,
                     seed, unit_ids, mean_se, crossing, out_l, out_lr) -> None:  # fmt: skip
    """Device twin of :func:`kernels._policy_cpu.protection_paths` (same arguments, CuPy arrays)."""
    cp = cupy_module()
    i64, f64 = cp.int64, cp.float64
    n, n_paths = out_l.shape
    pool, factor, weight = _c(pool, f64), _c(factor, f64), _c(lt_weight, f64)
    values = _c(values, cp.float32)
    k = weight.shape[1]
    per_unit = n_paths * k * 8 if urn else 0
    for unit0, n_chunk in _chunks(n, per_unit):
        scratch = cp.empty(n_chunk * n_paths * k if urn else 1, dtype=f64)
        args = (
            i64(kind), pool, i64(pool.shape[1]), _c(pool_len, i64), factor, i64(factor.shape[1]),
            _c(lut_lo, i64), _c(lut_w, f64), values, i64(values.shape[1]), i64(values.shape[2]),
            weight, i64(k), _c(lt_k_max, i64), i64(bool(urn)), _c(review, i64), cp.uint64(seed),
            _c(unit_ids, i64), _c(mean_se, f64), i64(bool(crossing)), out_l, out_lr,
            i64(n_paths), i64(unit0), i64(n_chunk), scratch,
        )  # fmt: skip
        _launch("protection_paths_kernel", n_chunk * n_paths, args)


def levels(d_l, d_lr, target, position, lot, out_s, out_fill_s, out_fill_ip, out_p_stockout, out_mean_lr,
           out_mean_r, out_onhand_s, q_levels, out_q_lr, out_q_l) -> None:  # fmt: skip
    """Device twin of :func:`kernels._policy_cpu.levels` (rows of ``d_l`` and ``d_lr`` ascending)."""
    cp = cupy_module()
    i64, f64 = cp.int64, cp.float64
    n, m = d_l.shape
    d_l, d_lr = _c(d_l, cp.float32), _c(d_lr, cp.float32)
    q_levels = _c(q_levels, f64)
    for unit0, n_chunk in _chunks(n, 16 * (m + 1)):
        scratch = cp.empty(n_chunk * 2 * (m + 1), dtype=f64)
        args = (
            d_l, d_lr, i64(m), _c(target, f64), _c(position, f64), _c(lot, f64), out_s, out_fill_s,
            out_fill_ip, out_p_stockout, out_mean_lr, out_mean_r, out_onhand_s, q_levels,
            i64(q_levels.shape[0]), out_q_lr, out_q_l, i64(unit0), i64(n_chunk), scratch,
        )  # fmt: skip
        _launch("levels_kernel", n_chunk, args)


def menu(d_l, d_lr, lot, taus, out_s, out_fill, out_onhand, out_mean_r) -> None:
    """Device twin of :func:`kernels._policy_cpu.menu`."""
    cp = cupy_module()
    i64, f64 = cp.int64, cp.float64
    n, m = d_l.shape
    d_l, d_lr, taus = _c(d_l, cp.float32), _c(d_lr, cp.float32), _c(taus, f64)
    for unit0, n_chunk in _chunks(n, 16 * (m + 1)):
        scratch = cp.empty(n_chunk * 2 * (m + 1), dtype=f64)
        args = (
            d_l, d_lr, i64(m), _c(lot, f64), taus, i64(taus.shape[0]), out_s, out_fill, out_onhand,
            out_mean_r, i64(unit0), i64(n_chunk), scratch,
        )  # fmt: skip
        _launch("menu_kernel", n_chunk, args)


def served(d_lr, unit_of, y, out) -> None:
    """Device twin of :func:`kernels._policy_cpu.served`."""
    cp = cupy_module()
    d_lr = _c(d_lr, cp.float32)
    args = (d_lr, cp.int64(d_lr.shape[1]), _c(unit_of, cp.int64), _c(y, cp.float64), out,
            cp.int64(out.shape[0]))  # fmt: skip
    _launch("served_kernel", out.shape[0], args)


def served_sorted(d_lr, units, starts, y, out) -> None:
    """Device twin of :func:`kernels._policy_cpu.served_sorted` (queries grouped by unit)."""
    cp = cupy_module()
    i64 = cp.int64
    d_lr = _c(d_lr, cp.float32)
    n_paths = d_lr.shape[1]
    units, starts, y = _c(units, i64), _c(starts, i64), _c(y, cp.float64)
    for g0, n_chunk in _chunks(units.shape[0], 8 * (n_paths + 1)):
        scratch = cp.empty(n_chunk * (n_paths + 1), dtype=cp.float64)
        args = (d_lr, i64(n_paths), units, starts, y, out, i64(g0), i64(n_chunk), scratch)
        _launch("served_sorted_kernel", n_chunk, args)


def choose(fill, on_hand, weight, group, lam, out_k, out_served) -> None:
    """Per unit the menu entry maximising ``lam[g] w F - H`` (the first best) and the served weight per group.

    Vectorised CuPy: the value of each entry is computed in the CPU's order of operations, the group sums by
    ``bincount`` (another order of addition than the CPU's loop).
    """
    cp = cupy_module()
    v = (lam[group] * weight)[:, None] * fill - on_hand
    out_k[:] = cp.argmax(v, axis=1)
    chosen = fill[cp.arange(fill.shape[0]), out_k]
    out_served[:] = cp.bincount(group, weights=weight * chosen, minlength=out_served.shape[0])
