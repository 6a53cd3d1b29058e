import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.selection import (
    DEMAND_CLASSES,
    Selection,
    demand_classes,
    fit_weights,
    pinball_per_series,
    segment_labels,
    select,
    series_scale,
    validation_losses,
)

Q = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
Z = np.array([-1.2816, -0.6745, 0.0, 0.6745, 1.2816])


def _origins(rng, N, H, n_origins, make):
    """Candidates and actuals at n_origins origins; make(mu, y) -> {model: (N, H, Q)}."""
    cands, acts = [], []
    for _ in range(n_origins):
        mu = rng.normal(10, 3, (N, H))
        y = mu + rng.normal(0, 1, (N, H))
        cands.append(make(mu, y))
        acts.append(y)
    return cands, acts


def test_demand_classes_of_constructed_series():
    y = np.array([
        [5, 6, 5, 4, 5, 6, 5, 4] * 3,        # demand every period, sizes alike: smooth
        [1, 30, 1, 2, 40, 1, 1, 1] * 3,      # every period, sizes vary: erratic
        [0, 0, 5, 0, 0, 0, 6, 0] * 3,        # rare, sizes alike: intermittent
        [0, 0, 1, 0, 0, 0, 30, 0] * 3,       # rare, sizes vary: lumpy
        [0] * 24,                            # no demand
    ], dtype=float)
    assert demand_classes(y).tolist() == ["smooth", "erratic", "intermittent", "lumpy", "no_demand"]
    gappy = np.where(np.arange(24) < 12, np.nan, y[2])[None, :]
    assert demand_classes(gappy)[0] in DEMAND_CLASSES
    assert demand_classes(np.full((1, 5), np.nan))[0] == "no_demand"


def test_segment_labels_cross_arrays():
    out = segment_labels(np.array(["smooth", "lumpy"]), np.array(["R1", "R2"]))
    assert out.tolist() == ["smooth/R1", "lumpy/R2"]
    with pytest.raises(ValueError, match="shapes"):
        segment_labels(np.array(["a"]), np.array(["b", "c"]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), season=st.integers(1, 12))
def test_series_scale_is_positive_and_finite(seed, season):
    rng = np.random.default_rng(seed)
    y = rng.poisson(rng.uniform(0, 3, (6, 1)), (6, 30)).astype(float)
    y[rng.random(y.shape) < 0.3] = np.nan
    y[0] = 4.0                               # constant: zero seasonal difference
    y[1] = np.nan                            # nothing observed
    s = series_scale(y, season)
    assert s.shape == (6,) and np.all(np.isfinite(s)) and np.all(s > 0)
    assert s[0] == 4.0 and s[1] == 1.0


def test_selection_picks_the_better_model_per_segment():
    rng = np.random.default_rng(0)
    N = 200
    seg = np.where(np.arange(N) < 100, "smooth", "lumpy")
    a = (seg == "smooth")[:, None, None]

    def make(mu, y):
        good, bad = mu[..., None] + Z, mu[..., None] + 3 + Z
        return {"A": np.where(a, good, bad), "B": np.where(a, bad, good)}

    cands, acts = _origins(rng, N, 6, 3, make)
    for method in ("segment", "ensemble", "series"):
        sel = select(cands, acts, Q, segments=seg, method=method)
        assert sel.report["smooth"]["chosen"] == "A" and sel.report["lumpy"]["chosen"] == "B", method
        chosen = sel.chosen()
        assert (chosen[:100] == "A").mean() > 0.9 and (chosen[100:] == "B").mean() > 0.9, method
        out = sel.apply(cands[0])
        assert out.shape == (N, 6, 5)
        np.testing.assert_allclose(out[:100][chosen[:100] == "A"], cands[0]["A"][:100][chosen[:100] == "A"])


def test_selection_round_trips_through_json_and_applies_by_segment():
    import json

    rng = np.random.default_rng(5)
    seg = np.where(np.arange(60) < 30, "smooth", "lumpy")
    a = (seg == "smooth")[:, None, None]

    def make(mu, y):
        return {"A": np.where(a, mu[..., None] + Z, mu[..., None] + 3 + Z),
                "B": np.where(a, mu[..., None] + 3 + Z, mu[..., None] + Z)}

    cands, acts = _origins(rng, 60, 4, 2, make)
    sel = select(cands, acts, Q, segments=seg, method="segment")
    back = Selection.from_dict(json.loads(json.dumps(sel.to_dict())))
    new = {m: F[[40, 5, 7]] for m, F in cands[0].items()}        # other series, other order
    out = back.apply(new, segments=np.array(["lumpy", "smooth", "unseen"]))
    np.testing.assert_allclose(out[0], new["B"][0])
    np.testing.assert_allclose(out[1], new["A"][1])
    np.testing.assert_allclose(out[2], back.apply(new, segments=np.array(["x"] * 3))[2])  # pooled


def test_ensemble_of_opposite_biases_beats_each_member():
    rng = np.random.default_rng(1)

    def make(mu, y):
        return {"high": mu[..., None] + 1.5 + Z, "low": mu[..., None] - 1.5 + Z}

    cands, acts = _origins(rng, 150, 6, 3, make)
    sel = select(cands, acts, Q, method="ensemble")
    rep = sel.report["all"]
    assert rep["chosen"] == "ensemble"
    assert abs(rep["weights"]["high"] - 0.5) < 0.1
    assert rep["chosen_loss"] < min(rep["loss"].values())
    np.testing.assert_allclose(sel.weights.sum(axis=1), 1.0)
    assert sel.weights.min() >= 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), M=st.integers(1, 5), K=st.integers(1, 60))
def test_weights_are_on_the_simplex_and_never_worse_than_the_best_member(seed, M, K):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 3, K)
    F = np.sort(y[None, :, None] + rng.normal(0, 2, (M, K, 1)) + rng.normal(0, 2, (M, K, 5)), axis=-1)
    a = rng.uniform(0.1, 2.0, K)
    w, loss = fit_weights(F, y, Q, a, n_iter=50)
    assert w.shape == (M,) and np.all(w >= 0) and abs(w.sum() - 1) < 1e-9
    an = a / a.sum()
    e = y[None, :, None] - F
    singles = [an @ np.maximum(Q * e[m], (Q - 1) * e[m]).mean(1) for m in range(M)]
    assert loss <= min(singles) + 1e-12


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), method=st.sampled_from(["segment", "ensemble", "series"]),
       shrinkage=st.floats(0.0, 5.0))
def test_a_starved_candidate_is_never_chosen(seed, method, shrinkage):
    rng = np.random.default_rng(seed)
    N = 60
    seg = rng.choice(np.array(["smooth", "erratic", "intermittent"]), N)

    def make(mu, y):
        return {
            "ets": mu[..., None] + rng.normal(0, 0.3, mu.shape)[..., None] + Z,
            "theta": mu[..., None] + rng.normal(0, 0.5, mu.shape)[..., None] + Z,
            "tft": mu[..., None] + rng.normal(0, 15.0, mu.shape)[..., None] + 3 * Z,   # starved: far off
        }

    cands, acts = _origins(rng, N, 6, 2, make)
    sel = select(cands, acts, Q, segments=seg, method=method, shrinkage=shrinkage, min_segment_size=5)
    assert np.all(sel.weights[:, sel.models.index("tft")] == 0)
    assert all(r["chosen"] != "tft" for r in sel.report.values())


def test_ensemble_selection_is_never_worse_on_validation_than_the_best_single_model():
    rng = np.random.default_rng(2)

    def make(mu, y):
        return {m: mu[..., None] + rng.normal(b, s, mu.shape)[..., None] + Z
                for m, b, s in (("a", 0.5, 1.0), ("b", -0.3, 1.5), ("c", 0.0, 3.0))}

    cands, acts = _origins(rng, 120, 8, 3, make)
    scale = rng.uniform(0.5, 2.0, 120)
    seg = np.where(np.arange(120) % 3 == 0, "x", "y")
    sel = select(cands, acts, Q, scale=scale, segments=seg, method="ensemble", min_gain=0.0)
    L, n = validation_losses(cands, acts, Q, scale)
    for name, rep in sel.report.items():
        rows = seg == name
        applied = [sel.apply(c)[rows] for c in cands]
        own = np.mean(sum(pinball_per_series(y[rows], F, Q) for F, y in zip(applied, acts, strict=True))
                      / len(cands) / scale[rows])
        assert own <= np.nanmean(L[rows], axis=0).min() + 1e-9
        assert rep["chosen_loss"] == pytest.approx(own, rel=1e-6)


def test_per_series_choice_follows_strong_evidence_and_shrinks_weak_one():
    rng = np.random.default_rng(3)
    N = 50

    def make(mu, y):
        A, B = mu[..., None] + Z, mu[..., None] + 0.5 + Z
        A[0], B[0] = A[0] + 3, mu[0, :, None] + Z      # series 0 is far better with B
        return {"A": A, "B": B}

    cands, acts = _origins(rng, N, 6, 3, make)
    weak = select(cands, acts, Q, method="series", shrinkage=0.1)
    assert weak.chosen()[0] == "B"
    strong = select(cands, acts, Q, method="series", shrinkage=1000.0)
    segment_choice = strong.report["all"]["chosen"]
    assert segment_choice != "B" and (strong.chosen() == segment_choice).all()


def test_small_segments_take_the_pooled_decision_and_unvalidated_series_their_segment():
    rng = np.random.default_rng(4)
    N = 40
    seg = np.array(["big"] * 37 + ["tiny"] * 3)

    def make(mu, y):
        return {"A": mu[..., None] + Z, "B": mu[..., None] + 4 + Z}

    cands, acts = _origins(rng, N, 4, 2, make)
    for y in acts:
        y[36] = np.nan                       # never validated
    sel = select(cands, acts, Q, segments=seg, method="segment", min_segment_size=5)
    assert sel.report["tiny"]["chosen"] == "pooled:A"
    assert sel.chosen()[36] == "A"


def test_bad_input_is_rejected_with_a_clear_message():
    F = {"A": np.zeros((3, 2, 5))}
    with pytest.raises(ValueError, match="same number"):
        select([F], [], Q)
    with pytest.raises(ValueError, match=r"expected \(N, H, Q\)"):
        select([{"A": np.zeros((3, 2, 4))}], [np.zeros((3, 2))], Q)
    with pytest.raises(ValueError, match="method"):
        select([F], [np.zeros((3, 2))], Q, method="best")
    with pytest.raises(ValueError, match="scale"):
        select([F], [np.zeros((3, 2))], Q, scale=np.zeros(3))
    with pytest.raises(ValueError, match="no series has a validated step"):
        select([F], [np.full((3, 2), np.nan)], Q)
    sel = select([F], [np.zeros((3, 2))], Q)
    assert isinstance(sel, Selection)
    with pytest.raises(ValueError, match="lack the selected models"):
        sel.apply({"B": np.zeros((3, 2, 5))})


def test_segment_series_reads_the_history_length_at_the_origin():
    from training.selection import history_buckets, segment_series

    season = 12
    y = np.full((3, 60), np.nan)
    y[0, -35:] = 5.0 + np.arange(35) % 3   # 35 months observed: short (< 3 seasons)
    y[1, -36:] = 5.0 + np.arange(36) % 3   # 36 months: long
    y[2, -60:] = 0.0                       # never sold: no demand, long
    assert history_buckets(y, season).tolist() == ["short", "long", "long"]
    assert segment_series(y, season, "demand_class_x_history").tolist() == [
        "smooth/short", "smooth/long", "no_demand/long"]
    np.testing.assert_array_equal(segment_series(y, season), demand_classes(y))
    # the same series seen 30 periods earlier is short there: the label follows the origin, not the series
    assert history_buckets(y[:, :30], season).tolist()[1] == "short"
    with pytest.raises(ValueError, match="segmenting"):
        segment_series(y, season, "by_colour")


def test_selection_keeps_its_segmenting_through_json():
    import dataclasses
    import json

    rng = np.random.default_rng(3)
    cands, acts = _origins(rng, 30, 4, 1, lambda mu, y: {"a": mu[..., None] + Z, "b": mu[..., None] + 2 * Z})
    sel = dataclasses.replace(select(cands, acts, Q), segmenting="demand_class_x_history")
    back = Selection.from_dict(json.loads(json.dumps(sel.to_dict())))
    assert back.segmenting == "demand_class_x_history"
    old = sel.to_dict()
    del old["segmenting"]  # a selection stored before segmentings existed was made by demand class
    assert Selection.from_dict(old).segmenting == "demand_class"
