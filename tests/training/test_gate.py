import math

from hypothesis import given
from hypothesis import strategies as st

from training.gate import CHAMPION, apply_gate, decide
from training.registry import client

w = st.floats(0.0, 2.0, allow_nan=False)


@given(w, w, st.one_of(st.none(), w))
def test_decide_promotes_only_when_strictly_better_than_both(cand, base, champ):
    d = decide(cand, base, champ)
    assert d.promote == (cand < base and (champ is None or cand < champ))


def test_nan_candidate_never_promotes():
    assert not decide(math.nan, 0.5, None).promote


def _version(c, name, tmp_path, k):
    src = tmp_path / f"v{k}"
    src.mkdir()
    return c.create_model_version(name, source=str(src)).version


def test_worse_model_never_becomes_champion_real_registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    name = "gate-test"
    c.create_registered_model(name)
    v1 = _version(c, name, tmp_path, 1)
    assert apply_gate(c, name, v1, 0.30, 0.35).promote
    assert c.get_model_version_by_alias(name, CHAMPION).version == v1

    v2 = _version(c, name, tmp_path, 2)  # better than the baseline, worse than the champion
    d2 = apply_gate(c, name, v2, 0.32, 0.35)
    assert not d2.promote and "champion" in d2.reason
    v3 = _version(c, name, tmp_path, 3)  # better than the champion, worse than the baseline
    assert not apply_gate(c, name, v3, 0.25, 0.20).promote
    assert c.get_model_version_by_alias(name, CHAMPION).version == v1

    tags = c.get_model_version(name, v2).tags
    assert tags["gate_decision"] == "rejected"
    assert float(tags["backtest_wape"]) == 0.32 and float(tags["champion_wape_before"]) == 0.30

    v4 = _version(c, name, tmp_path, 4)
    assert apply_gate(c, name, v4, 0.28, 0.35).promote
    assert c.get_model_version_by_alias(name, CHAMPION).version == v4
    assert c.get_model_version(name, v4).tags["gate_decision"] == "promoted"

    # a person may force a promotion; it is recorded as forced
    d = apply_gate(c, name, v2, 0.32, 0.35, force=True)
    assert d.promote and d.reason.startswith("forced")
    assert c.get_model_version_by_alias(name, CHAMPION).version == v2


def test_tolerance_lets_a_selection_tie_with_the_best_baseline_but_not_fall_far_behind():
    from training.gate import decide

    assert not decide(0.50, 0.50, None).promote  # the default rule stays strict
    assert decide(0.50, 0.50, None, tolerance=0.05).promote  # a selection that is the baseline itself
    assert decide(0.52, 0.50, None, tolerance=0.05).promote
    assert not decide(0.53, 0.50, None, tolerance=0.05).promote
    assert not decide(0.52, 0.50, 0.51, tolerance=0.05).promote  # still has to beat the champion
