"""Lazy Numba compilation with explicit signatures for the simulation kernels.

``@nb.njit(signature)`` compiles (or loads its cache) when the module is imported; the house rule is that
nothing heavy happens at import time, so the entry-point kernels are wrapped by :func:`lazy_njit`, which
compiles on first use or on an explicit :meth:`LazyKernel.compile` from ``warmup()``. Helpers called from
kernels are plain ``@nb.njit`` functions: they are typed and inlined when the kernel compiles.

Note: Numba's on-disk cache is keyed on the kernel's own source file, not on the helpers it inlines from
other modules; after editing a helper, delete ``kernels/__pycache__/*.nbi`` and ``*.nbc``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numba as nb

__all__ = ["LazyKernel", "lazy_njit"]


class LazyKernel:
    """A Python function compiled by Numba with one explicit signature on first use."""

    def __init__(self, func: Callable, signature: Any, options: dict[str, Any]):
        self.py_func = func
        self.signature = signature
        self.options = dict(options)
        #: iterations per task of the parallel loop, handed out dynamically (0: Numba's equal static split)
        self.chunksize = int(self.options.pop("chunksize", 0))
        self._compiled = None
        self._lock = threading.Lock()
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def compile(self) -> Any:
        """Compile (or load from the on-disk cache) and return the Numba dispatcher."""
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = nb.njit(self.signature, **self.options)(self.py_func)
        return self._compiled

    def __call__(self, *args: Any) -> Any:
        kernel = self._compiled or self.compile()
        if self.chunksize:
            with nb.parallel_chunksize(self.chunksize):
                return kernel(*args)
        return kernel(*args)


def lazy_njit(signature: Any, **options: Any) -> Callable[[Callable], LazyKernel]:
    """Decorator: ``@lazy_njit(sig, cache=True, parallel=True)`` - like ``@nb.njit(sig, ...)`` but lazy.

    ``chunksize=n`` (not a Numba option) runs each call's parallel loop in chunks of ``n`` iterations handed
    out to threads as they free up (``numba.parallel_chunksize``), for loops whose iterations vary or whose
    threads share cores with other work.
    """

    def wrap(func: Callable) -> LazyKernel:
        return LazyKernel(func, signature, options)

    return wrap
