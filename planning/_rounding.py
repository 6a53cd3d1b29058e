"""Order-quantity rounding to supplier terms: pack size, minimum order quantity (MOQ), maximum order quantity.

The raw quantity is what lifts the inventory position to the order-up-to level. A positive raw quantity is
rounded *up* to whole packs (ordering less than asked would knowingly miss the service target), raised to the
MOQ (itself rounded up to whole packs) and capped at the largest whole number of packs not above the maximum.
A raw quantity of zero or less orders nothing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BOUND_MAX", "BOUND_MOQ", "BOUND_NONE", "BOUND_PACK", "BOUND_NAMES", "round_order_quantity"]

BOUND_NONE, BOUND_PACK, BOUND_MOQ, BOUND_MAX = 0, 1, 2, 3
#: Name of each binding-term code, as written to the evidence.
BOUND_NAMES = ("none", "pack_size", "moq", "max_order_qty")


def round_order_quantity(
    q_raw: np.ndarray, pack: np.ndarray, moq: np.ndarray, max_qty: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Round raw order quantities to pack multiples, raise them to the MOQ and cap them at the maximum.

    Args:
        q_raw: (N,) raw quantities (any real; <= 0 means no order).
        pack: (N,) pack sizes, >= 1 (integer-valued).
        moq: (N,) minimum order quantities, >= 0.
        max_qty: (N,) maximum order quantities (``inf`` or ``None`` for no cap); must be >= one pack and >=
            the MOQ rounded up to packs.

    Returns:
        ``(q, bound)``: (N,) float64 rounded quantities, all whole multiples of ``pack``; (N,) int8 code of
        the term that changed the quantity most (``BOUND_NONE`` when ``q_raw`` was already a whole number of
        packs within the limits; see :data:`BOUND_NAMES`).

    Raises:
        ValueError: a pack size below 1, a negative MOQ or a maximum below the MOQ / one pack, naming the
            first offending row.
    """
    q_raw = np.asarray(q_raw, dtype=np.float64)
    pack = np.asarray(pack, dtype=np.float64)
    moq = np.asarray(moq, dtype=np.float64)
    n = q_raw.shape[0]
    max_qty = np.full(n, np.inf) if max_qty is None else np.asarray(max_qty, dtype=np.float64)
    for name, arr in (("pack", pack), ("moq", moq), ("max_qty", max_qty)):
        if arr.shape != q_raw.shape:
            raise ValueError(f"{name}: shape {arr.shape}, expected {q_raw.shape} like q_raw")
    _check(pack < 1, pack, "pack: expected a pack size >= 1")
    _check(moq < 0, moq, "moq: expected a minimum order quantity >= 0")
    moq_packs = np.ceil(moq / pack) * pack
    max_packs = np.floor(max_qty / pack) * pack
    _check(
        (max_packs < pack) | (max_packs < moq_packs),
        max_qty,
        "max_qty: expected a maximum of at least one pack and at least the MOQ rounded up to packs",
    )

    positive = q_raw > 0
    q_pack = np.ceil(np.where(positive, q_raw, 0.0) / pack - 1e-9) * pack
    q_pack = np.maximum(q_pack, 0.0)
    q_moq = np.maximum(q_pack, moq_packs)
    q = np.where(positive, np.minimum(q_moq, max_packs), 0.0)

    bound = np.zeros(n, dtype=np.int8)
    bound[positive & (q_pack > q_raw + 1e-9)] = BOUND_PACK
    bound[positive & (q_moq > q_pack)] = BOUND_MOQ
    bound[positive & (q_moq > max_packs)] = BOUND_MAX
    return q, bound


def _check(bad: np.ndarray, values: np.ndarray, message: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{message}; row {i} has {values[i]!r}")
