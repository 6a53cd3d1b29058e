import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning._rounding import BOUND_MAX, BOUND_MOQ, BOUND_NONE, BOUND_PACK, round_order_quantity


def test_examples_pack_moq_max():
    q_raw = np.array([0.0, -3.0, 7.0, 12.0, 3.0, 500.0, 24.0])
    pack = np.array([6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 1.0])
    moq = np.array([12.0, 12.0, 0.0, 0.0, 10.0, 0.0, 0.0])
    mx = np.array([np.inf, np.inf, np.inf, np.inf, np.inf, 100.0, 20.0])
    q, bound = round_order_quantity(q_raw, pack, moq, mx)
    # nothing ordered for <= 0; 7 -> 12 (2 packs); 12 stays; 3 -> MOQ 10 rounded up to 12; 500 -> 96 (16
    # packs)
    assert q.tolist() == [0.0, 0.0, 12.0, 12.0, 12.0, 96.0, 20.0]
    assert bound.tolist() == [BOUND_NONE, BOUND_NONE, BOUND_PACK, BOUND_NONE, BOUND_MOQ, BOUND_MAX, BOUND_MAX]


def test_refuses_bad_terms_naming_the_row():
    with pytest.raises(ValueError, match="pack.*row 1"):
        round_order_quantity(np.ones(2), np.array([1.0, 0.0]), np.zeros(2))
    with pytest.raises(ValueError, match="max_qty.*row 0"):
        round_order_quantity(np.ones(1), np.array([6.0]), np.array([12.0]), np.array([10.0]))
    with pytest.raises(ValueError, match="moq"):
        round_order_quantity(np.ones(1), np.array([1.0]), np.array([-1.0]))


@settings(max_examples=200, deadline=None)
@given(
    q=st.floats(-50, 5000),
    pack=st.integers(1, 48),
    moq_packs=st.integers(0, 10),
    max_packs=st.integers(10, 300),
)
def test_properties(q, pack, moq_packs, max_packs):
    moq = moq_packs * pack - (pack // 2 if moq_packs else 0)  # MOQ not always a pack multiple
    out, _ = round_order_quantity(
        np.array([q]),
        np.array([float(pack)]),
        np.array([float(moq)]),
        np.array([float(max_packs * pack + pack - 1)]),
    )
    o = out[0]
    if q <= 0:
        assert o == 0
        return
    assert o % pack == 0  # whole packs
    assert o >= moq  # at least the MOQ
    assert o <= max_packs * pack  # never above the maximum
    assert o >= min(q, max_packs * pack) - 1e-9  # never below what was asked unless capped
    assert o - max(q, moq) < pack  # and less than one pack above what was needed
