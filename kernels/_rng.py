"""Counter-based random numbers for the inventory simulation (CPU side).

Every random number is a pure function of ``(seed, unit, path, period, stream)``, so a seed gives the same
result whatever the thread count, the order of the loops or the device. The generator is SplitMix64
(Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"), used the counter-based way:

* a 64-bit key per ``(seed, unit, path)``: two rounds of the SplitMix64 finaliser over the seed, the unit
  and the path index (:func:`path_key`);
* draw ``c`` of that key is ``fmix64(key + (c + 1) * GOLDEN)``, with ``c = period * N_STREAMS + stream``
  (:func:`draw`) - SplitMix64's own output function at position ``c`` of a Weyl sequence started at ``key``.

Each 64-bit draw supplies two 32-bit uniforms: the low half drives the demand of the period, the high half
the lead time of an order placed in it. Streams ``1 .. N_STREAMS - 1`` feed rejection samplers (gamma).

The same integer arithmetic is written in CUDA C in ``kernels/_simulate_gpu.py`` (``RNG_CUDA_SOURCE``), so
CPU and GPU draw bit-identical integers. Nothing is compiled at import; :func:`warmup` compiles.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from kernels._jit import lazy_njit

__all__ = ["GOLDEN", "N_STREAMS", "draw", "fmix64", "path_key", "uniforms", "warmup"]

#: Weyl increment of SplitMix64 (2**64 / golden ratio, odd).
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Random draws reserved per (unit, path, period): stream 0 is the demand/lead-time pair, the rest are spare.
N_STREAMS = 8

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_UNIT_SALT = np.uint64(0xD1B54A32D192ED03)
_PATH_SALT = np.uint64(0x8CB92BA72F3D8DD7)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_ONE = np.uint64(1)
_NSTREAMS_U = np.uint64(N_STREAMS)
_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
#: 2**-32, turns a 32-bit integer into a uniform in [0, 1).
INV_2_32 = 2.0**-32

_JIT = {"cache": True, "nogil": True}


@nb.njit(**_JIT)
def fmix64(z):
    """SplitMix64 finaliser (Stafford's variant 13): a bijective 64-bit mixer."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(**_JIT)
def path_key(seed, unit, path):
    """Key of the random stream of one ``(unit, path)`` under ``seed``."""
    k = fmix64(seed ^ (nb.uint64(unit) * _UNIT_SALT + GOLDEN))
    return fmix64(k ^ (nb.uint64(path) * _PATH_SALT + _M1))


@nb.njit(**_JIT)
def draw(key, period, stream):
    """The 64-bit draw number ``period * N_STREAMS + stream`` of a path key."""
    c = nb.uint64(period) * _NSTREAMS_U + nb.uint64(stream) + _ONE
    return fmix64(key + c * GOLDEN)


@lazy_njit(nb.float64[:, :, :](nb.uint64, nb.int64, nb.int64, nb.int64), cache=True)
def _uniforms(seed, n_units, n_paths, n_periods):
    out = np.empty((n_units, n_paths, 2 * n_periods))
    for u in range(n_units):
        for p in range(n_paths):
            key = path_key(seed, u, p)
            for t in range(n_periods):
                x = draw(key, t, 0)
                out[u, p, 2 * t] = (x & _LOW32) * INV_2_32
                out[u, p, 2 * t + 1] = (x >> _S32) * INV_2_32
    return out


def uniforms(seed: int, n_units: int, n_paths: int, n_periods: int) -> np.ndarray:
    """Materialise the stream-0 uniforms (for tests and the NumPy reference only).

    Args:
        seed: non-negative integer seed.
        n_units: number of planning units.
        n_paths: number of Monte-Carlo paths.
        n_periods: number of periods.

    Returns:
        Array of shape ``(n_units, n_paths, 2 * n_periods)``: ``[..., 2t]`` is the demand uniform of period
        ``t`` (low 32 bits) and ``[..., 2t + 1]`` its lead-time uniform (high 32 bits), both in [0, 1).
    """
    return _uniforms(np.uint64(seed), n_units, n_paths, n_periods)


def warmup() -> None:
    """Compile the generator (the kernels inline it, so this is only needed by :func:`uniforms`)."""
    uniforms(0, 1, 1, 1)
