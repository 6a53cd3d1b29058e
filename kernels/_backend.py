"""Array-backend dispatch shared by every kernel.

Kernels take arrays and choose the backend from them: NumPy/Numba for host arrays, CuPy for device arrays.
CuPy is imported here and only here (STYLE.md), lazily, so a machine without a GPU never pays for it and a
missing ``cupy`` yields an error naming the install command.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

GPU_INSTALL_HINT = 'pip install -e ".[gpu]"  (CuPy for CUDA 12: cupy-cuda12x)'


class BackendError(RuntimeError):
    """Raised when arrays live on different devices or the GPU backend is unavailable."""


@functools.cache
def _cupy() -> ModuleType | None:
    try:
        import cupy  # noqa: PLC0415 - the one place CuPy is imported
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # no driver, no device
        return None
    return cupy


def cupy_module() -> ModuleType:
    """Return the CuPy module or raise with the install command.

    Raises:
        BackendError: CuPy is not installed or no CUDA device is visible.
    """
    cp = _cupy()
    if cp is None:
        raise BackendError(
            f"the GPU backend needs CuPy and a CUDA device; install it with: {GPU_INSTALL_HINT}"
        )
    return cp


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return _cupy() is not None


def _is_cupy_array(x: Any) -> bool:
    return type(x).__module__.split(".")[0] in ("cupy", "cupyx")


def get_array_module(*arrays: Any) -> ModuleType:
    """Return ``numpy`` or ``cupy`` for the given arrays; ``None`` entries are ignored.

    Sparse matrices count as well: ``scipy.sparse`` means host, ``cupyx.scipy.sparse`` means device.

    Raises:
        BackendError: some arrays are on the host and others on the device.
    """
    kinds = {_is_cupy_array(a) for a in arrays if a is not None}
    if len(kinds) > 1:
        raise BackendError("mixed devices: all array arguments must be NumPy (host) or all CuPy (device)")
    if kinds == {True}:
        return cupy_module()
    return np


def to_host(x: Any) -> np.ndarray:
    """Copy an array to host memory (no-op for NumPy arrays)."""
    if _is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def engine_backend(xp: ModuleType) -> ModuleType:
    """The simulation engine's backend for an array namespace: ``_policy_cpu`` (NumPy) or ``_policy_gpu``.

    Both expose the same functions with the same arguments (``protection_paths``, ``levels``, ``menu``,
    ``served``, ``served_sorted``, ``choose``); imported on first use, so ``import kernels`` loads neither
    Numba's kernels nor CuPy.
    """
    if xp is np:
        from kernels import _policy_cpu  # noqa: PLC0415 - Numba loads when a kernel first runs

        return _policy_cpu
    from kernels import _policy_gpu  # noqa: PLC0415 - GPU path only

    return _policy_gpu
