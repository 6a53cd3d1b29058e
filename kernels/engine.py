"""Start-up of the policy simulation engine: compile (or load from Numba's disk cache) every kernel once.

Call :func:`warmup` where a process starts serving (a Serve replica's constructor, the API's start-up), never
on a user's first request (statsforecast issues #162, #565: a first call that pays for compilation).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kernels.allocate import Constraint, allocate_increments
from kernels.levels import (
    allocate_group_fill,
    expected_served,
    fill_grid,
    order_up_to_levels,
    service_menu,
)
from kernels.policy import HistoryDemand, QuantileDemand, policy_samples

__all__ = ["warmup"]


def warmup(gpu: bool = False) -> None:
    """Run every engine kernel on a tiny problem (Numba's CPU kernels; with ``gpu`` the CUDA ones as well).

    Args:
        gpu: also compile the CUDA kernels on the current device (raises ``BackendError`` without CuPy).
    """
    from kernels._backend import cupy_module  # noqa: PLC0415

    namespaces = [np] + ([cupy_module()] if gpu else [])
    for xp in namespaces:
        vals = xp.asarray(np.ones((2, 2, 3), dtype=np.float32) * np.array([0.0, 1.0, 2.0], dtype=np.float32))
        pmf = xp.asarray(np.array([[0.0, 1.0], [0.5, 0.5]]))
        levels = np.array([0.1, 0.5, 0.9])
        for crossing in (True, False):
            policy_samples(QuantileDemand(levels, vals), pmf, xp.asarray([1, 1]), 8, 0, crossing=crossing)
        hist = HistoryDemand(xp.ones((2, 2)), xp.asarray([2, 1]), xp.ones((2, 1)))
        smp = policy_samples(hist, pmf, 1, 8, 0, lead_time_counts=pmf + 1.0)
        expected_served(smp, xp.asarray([0, 1]), xp.asarray([1.0, 2.0]))
        order_up_to_levels(smp, 0.9, xp.zeros(2), in_place=True)
        smp = dataclasses.replace(smp, is_sorted=True)
        expected_served(smp, xp.asarray([0, 1]), xp.asarray([1.0, 2.0]))
        menu = service_menu(smp, xp.zeros(2), fill_grid(0.8))
        allocate_group_fill(menu, xp.asarray([0, 0]), xp.asarray([0.9]))
    allocate_increments(
        np.array([0, 0]), np.array([0, 1]), np.array([2.0, 1.0]),
        [Constraint("budget", np.ones(2), np.zeros(2, np.int64), np.ones(1))], 1,
    )  # fmt: skip
