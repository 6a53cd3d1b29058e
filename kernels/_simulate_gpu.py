"""CUDA kernel of the periodic-review inventory simulation (GPU backend, CuPy ``RawKernel``).

The twin of ``kernels/_simulate_cpu.py``: one thread per (unit, path), the same counter-based generator
(SplitMix64 finaliser over a Weyl counter, integer arithmetic, so the 64-bit draws are bit-identical to the
CPU's), the same alias tables (built once on the host by ``kernels._sampling`` and copied), the same timing
convention and statistics. Continuous demand uses the same formulas in double precision; transcendental
functions may differ from the host's in the last bit, so normal/gamma/quantile samples agree to ~1e-15
relative, discrete (Poisson, negative binomial) samples exactly.

Per-unit sums: a warp-shuffle reduction over the 32 paths of a warp, then one ``atomicAdd`` per warp and
statistic. Blocks of 128 threads never straddle two units. Sums of integer-valued figures (counts, integer
demand) are exact in any order; other sums may differ from run to run in the last bits.

Kernels are compiled on first use, once per ring-buffer size, and cached by CuPy per device (and on disk).
CuPy is reached only through ``kernels._backend``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from kernels._backend import cupy_module
from kernels._rng import N_STREAMS
from kernels._simulate_cpu import N_STAT

__all__ = ["RNG_CUDA_SOURCE", "SIMULATE_CUDA_SOURCE", "simulate_gpu", "uniforms_gpu"]

BLOCK = 128

RNG_CUDA_SOURCE = r"""
typedef unsigned long long u64;
typedef long long i64;
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define M1 0xBF58476D1CE4E5B9ULL
#define M2 0x94D049BB133111EBULL
#define UNIT_SALT 0xD1B54A32D192ED03ULL
#define PATH_SALT 0x8CB92BA72F3D8DD7ULL
#define N_STREAMS N_STREAMS_VALUEULL
#define INV_2_32 2.3283064365386963e-10

__device__ __forceinline__ u64 fmix64(u64 z) {
    z = (z ^ (z >> 30)) * M1;
    z = (z ^ (z >> 27)) * M2;
    return z ^ (z >> 31);
}
__device__ __forceinline__ u64 path_key(u64 seed, i64 unit, i64 path) {
    u64 k = fmix64(seed ^ ((u64)unit * UNIT_SALT + GOLDEN));
    return fmix64(k ^ ((u64)path * PATH_SALT + M1));
}
__device__ __forceinline__ u64 draw(u64 key, i64 period, i64 stream) {
    u64 c = (u64)period * N_STREAMS + (u64)stream + 1ULL;
    return fmix64(key + c * GOLDEN);
}
__device__ __forceinline__ double open_uniform(u64 u32) { return ((double)u32 + 0.5) * INV_2_32; }
""".replace("N_STREAMS_VALUE", str(N_STREAMS))

SIMULATE_CUDA_SOURCE = r"""
__device__ __forceinline__ i64 sample_table(const unsigned int* tab, i64 start, i64 n, u64 u) {
    u64 prod = u * (u64)n;
    i64 j = (i64)(prod >> 32);
    bool keep = (prod & 0xFFFFFFFFULL) < (u64)tab[start + j];
    i64 alias = (i64)tab[start + n + j];
    return keep ? j : alias;
}

__device__ double norm_ppf(double p) {
    const double a0 = -3.969683028665376e+01, a1 = 2.209460984245205e+02, a2 = -2.759285104469687e+02,
                 a3 = 1.383577518672690e+02, a4 = -3.066479806614716e+01, a5 = 2.506628277459239e+00;
    const double b0 = -5.447609879822406e+01, b1 = 1.615858368580409e+02, b2 = -1.556989798598866e+02,
                 b3 = 6.680131188771972e+01, b4 = -1.328068155288572e+01;
    const double c0 = -7.784894002430293e-03, c1 = -3.223964580411365e-01, c2 = -2.400758277161838e+00,
                 c3 = -2.549732539343734e+00, c4 = 4.374664141464968e+00, c5 = 2.938163982698783e+00;
    const double d0 = 7.784695709041462e-03, d1 = 3.224671290700398e-01, d2 = 2.445134137142996e+00,
                 d3 = 3.754408661907416e+00;
    const double p_low = 0.02425;
    if (p < p_low) {
        double q = sqrt(-2.0 * log(p));
        return (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) /
               ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0);
    }
    if (p > 1.0 - p_low) {
        double q = sqrt(-2.0 * log(1.0 - p));
        return -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) /
               ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0);
    }
    double q = p - 0.5;
    double r = q * q;
    return (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q /
           (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1.0);
}

__device__ double gamma_draw(u64 key, i64 period, double shape, double scale, u64 u_boost) {
    if (shape <= 0.0 || scale <= 0.0) return 0.0;
    double a = shape >= 1.0 ? shape : shape + 1.0;
    double d = a - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);
    double g = -1.0;
    for (int i = 0; i < (int)N_STREAMS - 1; ++i) {
        u64 x = draw(key, period, 1 + i);
        double z = norm_ppf(open_uniform(x & 0xFFFFFFFFULL));
        double v = 1.0 + c * z;
        if (v <= 0.0) continue;
        v = v * v * v;
        double w = open_uniform(x >> 32);
        if (log(w) < 0.5 * z * z + d - d * v + d * log(v)) { g = d * v; break; }
    }
    if (g < 0.0) return shape * scale;
    if (shape < 1.0) g *= pow(open_uniform(u_boost), 1.0 / shape);
    return g * scale;
}

__device__ double quantile_inverse(double u, const double* tau, const double* x, i64 m) {
    double v;
    if (u <= tau[0]) {
        double theta = (x[1] - x[0]) / log(tau[1] / tau[0]);
        v = x[0] - theta * log(tau[0] / u);
    } else if (u >= tau[m - 1]) {
        double theta = (x[m - 1] - x[m - 2]) / log((1.0 - tau[m - 2]) / (1.0 - tau[m - 1]));
        v = x[m - 1] + theta * log((1.0 - tau[m - 1]) / (1.0 - u));
    } else {
        i64 j = 0;
        while (u > tau[j + 1]) ++j;
        double w = (u - tau[j]) / (tau[j + 1] - tau[j]);
        v = x[j] + w * (x[j + 1] - x[j]);
    }
    return v > 0.0 ? v : 0.0;
}

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
    return v;
}

extern "C" __global__ void simulate_kernel(
    const u64 seed, const i64 kind,
    const i64* d_off, const i64* d_lo, const unsigned int* d_tab,
    const double* p1, const double* p2, const double* qx, const double* qtau, const i64 m,
    const i64* lt_off, const i64* lt_lo, const unsigned int* lt_tab, const i64* supplier,
    const i64* policy, const double* s_lvl, const double* S_lvl, const double* Q, const i64* R,
    const double* net0, const double* open_orders, const i64 n_open,
    const i64 lost, const i64 n_units, const i64 n_paths, const i64 n_periods, const i64 burn_in,
    const i64 n_dper, const i64 blocks_per_unit, double* out)
{
    const i64 i = (i64)blockIdx.x / blocks_per_unit;
    const i64 p = ((i64)blockIdx.x % blocks_per_unit) * blockDim.x + threadIdx.x;
    if (i >= n_units) return;  // whole block: no warp is split
    const bool active = p < n_paths;
    double acc[N_STAT];
    for (int k = 0; k < N_STAT; ++k) acc[k] = 0.0;
    if (active) {
        double ring[RING_CAP];
        const i64 mask = RING_CAP - 1;
        for (int k = 0; k < RING_CAP; ++k) ring[k] = 0.0;
        double open_total = 0.0;
        for (i64 k = 0; k < n_open; ++k) {
            double v = open_orders[i * n_open + k];
            ring[k] += v;
            open_total += v;
        }
        const i64 sup = supplier[i];
        const i64 lt_start = lt_off[sup];
        const i64 lt_n = (lt_off[sup + 1] - lt_start) >> 1;
        const i64 lt_base = lt_lo[sup];
        const i64 pol = policy[i];
        const double s_i = s_lvl[i], S_i = S_lvl[i], Q_i = Q[i];
        const i64 R_i = R[i];
        i64 d_start = d_off[i];
        i64 d_n = (d_off[i + 1] - d_start) >> 1;
        i64 d_base = d_lo[i];
        const u64 key = path_key(seed, i, p);
        double net = net0[i];
        double ip = net + open_total;
        double dem = 0.0, short_p = 0.0, ok = 0.0, cycles = 0.0, on_hand_sum = 0.0, net_sum = 0.0;
        double n_ord = 0.0, q_sum = 0.0;
        bool cycle_bad = false, any_out = false;
        i64 phase = 0;
        for (i64 t = 0; t < n_periods; ++t) {
            const i64 slot = t & mask;
            net += ring[slot];
            ring[slot] = 0.0;
            const u64 x = draw(key, t, 0);
            if (phase == 0) {
                double q = 0.0;
                if (pol == 0) q = S_i - ip;
                else if (pol == 1) { if (ip <= s_i) q = S_i - ip; }
                else if (pol == 2) { if (ip <= s_i) q = (floor((s_i - ip) / Q_i) + 1.0) * Q_i; }
                else if (ip < s_i) q = S_i - ip;
                if (q > 0.0) {
                    ip += q;
                    const i64 lt = lt_base + sample_table(lt_tab, lt_start, lt_n, x >> 32);
                    if (lt == 0) net += q;
                    else ring[(t + lt) & mask] += q;
                    if (t >= burn_in) { n_ord += 1.0; q_sum += q; }
                }
            }
            const i64 cur_phase = phase;
            phase = (phase == R_i - 1) ? 0 : phase + 1;
            const i64 tp = n_dper > 1 ? t : 0;
            double d;
            if (kind <= 1) {
                if (n_dper > 1) {
                    const i64 r = i * n_dper + t;
                    d_start = d_off[r];
                    d_n = (d_off[r + 1] - d_start) >> 1;
                    d_base = d_lo[r];
                }
                d = (double)(d_base + sample_table(d_tab, d_start, d_n, x & 0xFFFFFFFFULL));
            } else if (kind == 2) {
                d = p1[i * n_dper + tp] + p2[i * n_dper + tp] * norm_ppf(open_uniform(x & 0xFFFFFFFFULL));
                d = d > 0.0 ? d : 0.0;
            } else if (kind == 3) {
                d = gamma_draw(key, t, p1[i * n_dper + tp], p2[i * n_dper + tp], x & 0xFFFFFFFFULL);
            } else {
                d = quantile_inverse(open_uniform(x & 0xFFFFFFFFULL), qtau, qx + (i * n_dper + tp) * m, m);
            }
            const double avail = net > 0.0 ? net : 0.0;
            const double served = d < avail ? d : avail;
            const double used = lost != 0 ? served : d;
            net -= used;
            ip -= used;
            if (t >= burn_in) {
                const double sh = d - served;
                dem += d;
                short_p += sh;
                const bool bad = (sh > 0.0) || (net < 0.0);
                cycle_bad = cycle_bad || bad;
                any_out = any_out || bad;
                net_sum += net;
                on_hand_sum += net > 0.0 ? net : 0.0;
                if (cur_phase == R_i - 1 || t == n_periods - 1) {
                    if (t - cur_phase >= burn_in) {
                        cycles += 1.0;
                        ok += cycle_bad ? 0.0 : 1.0;
                    }
                    cycle_bad = false;
                }
            }
        }
        acc[0] = dem;
        acc[1] = short_p;
        acc[2] = short_p * short_p;
        acc[3] = dem * dem;
        acc[4] = short_p * dem;
        acc[5] = ok;
        acc[6] = ok * ok;
        acc[7] = cycles;
        acc[8] = any_out ? 1.0 : 0.0;
        acc[9] = on_hand_sum;
        acc[10] = net > 0.0 ? net : 0.0;
        acc[11] = on_hand_sum - net_sum;
        acc[12] = n_ord;
        acc[13] = q_sum;
    }
    for (int k = 0; k < N_STAT; ++k) {
        const double v = warp_sum(acc[k]);
        if ((threadIdx.x & 31) == 0) atomicAdd(out + i * N_STAT + k, v);
    }
}
"""

_UNIFORMS_CUDA_SOURCE = r"""
extern "C" __global__ void uniforms_kernel(const u64 seed, const i64 n_units, const i64 n_paths,
                                           const i64 n_periods, double* out) {
    const i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_units * n_paths) return;
    const i64 u = g / n_paths, p = g % n_paths;
    const u64 key = path_key(seed, u, p);
    for (i64 t = 0; t < n_periods; ++t) {
        const u64 x = draw(key, t, 0);
        out[g * 2 * n_periods + 2 * t] = (double)(x & 0xFFFFFFFFULL) * INV_2_32;
        out[g * 2 * n_periods + 2 * t + 1] = (double)(x >> 32) * INV_2_32;
    }
}
"""


@functools.cache
def _simulate_kernel(ring_cap: int, device_id: int) -> Any:
    """The compiled simulation kernel for one ring-buffer size on one device (CuPy also caches on disk)."""
    cp = cupy_module()
    code = f"#define RING_CAP {ring_cap}\n#define N_STAT {N_STAT}\n" + RNG_CUDA_SOURCE + SIMULATE_CUDA_SOURCE
    return cp.RawKernel(code, "simulate_kernel", options=("--std=c++14",))


@functools.cache
def _uniforms_kernel(device_id: int) -> Any:
    cp = cupy_module()
    return cp.RawKernel(RNG_CUDA_SOURCE + _UNIFORMS_CUDA_SOURCE, "uniforms_kernel", options=("--std=c++14",))


def _dev(cp: Any, x: Any, dtype: Any) -> Any:
    return cp.ascontiguousarray(cp.asarray(x, dtype=dtype))


def simulate_gpu(a: Any) -> Any:
    """Per-unit statistic sums ``(n_units, N_STAT)`` on the device for prepared ``KernelArgs``."""
    cp = cupy_module()
    n_units = int(a.S.shape[0])
    out = cp.zeros((n_units, N_STAT), dtype=cp.float64)
    if n_units == 0:
        return out
    bpu = (a.n_paths + BLOCK - 1) // BLOCK
    kernel = _simulate_kernel(int(a.ring_cap), cp.cuda.Device().id)
    i64, f64 = np.int64, np.float64
    args = (
        np.uint64(a.seed), i64(a.kind),
        _dev(cp, a.d_off, cp.int64), _dev(cp, a.d_lo, cp.int64), _dev(cp, a.d_tab, cp.uint32),
        _dev(cp, a.p1, f64), _dev(cp, a.p2, f64), _dev(cp, a.qx, f64), _dev(cp, a.qtau, f64),
        i64(a.qx.shape[2]),
        _dev(cp, a.lt_off, cp.int64), _dev(cp, a.lt_lo, cp.int64), _dev(cp, a.lt_tab, cp.uint32),
        _dev(cp, a.supplier, cp.int64), _dev(cp, a.policy, cp.int64), _dev(cp, a.s, f64), _dev(cp, a.S, f64),
        _dev(cp, a.Q, f64), _dev(cp, a.R, cp.int64), _dev(cp, a.net0, f64), _dev(cp, a.open_orders, f64),
        i64(a.open_orders.shape[1]), i64(a.lost), i64(n_units), i64(a.n_paths), i64(a.n_periods),
        i64(a.burn_in), i64(a.n_dper), i64(bpu), out,
    )  # fmt: skip
    kernel((n_units * bpu,), (BLOCK,), args)
    return out


def uniforms_gpu(seed: int, n_units: int, n_paths: int, n_periods: int) -> Any:
    """Device twin of :func:`kernels._rng.uniforms` (shape ``(n_units, n_paths, 2 * n_periods)``)."""
    cp = cupy_module()
    out = cp.empty((n_units, n_paths, 2 * n_periods), dtype=cp.float64)
    total = n_units * n_paths
    kernel = _uniforms_kernel(cp.cuda.Device().id)
    kernel(((total + 255) // 256,), (256,), (np.uint64(seed), np.int64(n_units), np.int64(n_paths),
                                             np.int64(n_periods), out))  # fmt: skip
    return out
