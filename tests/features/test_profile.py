"""Tenant profiles: remembered settings, merged training overrides, clear errors (SQLite and PostgreSQL)."""

import pytest

from features.profile import ProfileError, TenantProfile, get_profile, model_name_for, update_profile


def test_default_profile_and_model_name(engine):
    p = get_profile(engine, "acme")
    assert p == TenantProfile()
    assert model_name_for("acme", p) == "acme-tft"


def test_update_remembers_and_merges_training_overrides(engine):
    update_profile(engine, "acme", horizon=18, train={"fit": {"max_epochs": 5, "seed": 1}})
    update_profile(engine, "acme", train={"fit": {"seed": 7}, "holdout": 18}, model_name="acme-m")
    p = get_profile(engine, "acme")
    assert p.horizon == 18
    assert p.train == {"fit": {"max_epochs": 5, "seed": 7}, "holdout": 18}
    assert model_name_for("acme", p) == "acme-m"
    assert get_profile(engine, "other") == TenantProfile()  # per tenant


def test_bad_values_are_refused_and_nothing_is_stored(engine):
    update_profile(engine, "acme", horizon=6)
    with pytest.raises(ProfileError, match="horizon = 0"):
        update_profile(engine, "acme", horizon=0)
    with pytest.raises(ProfileError, match="freq"):
        update_profile(engine, "acme", freq="Q")
    with pytest.raises(ProfileError, match="listed twice"):
        update_profile(engine, "acme", hierarchy=[["region"], ["region"]])
    with pytest.raises(ProfileError, match="Extra inputs"):
        update_profile(engine, "acme", colour="red")
    assert get_profile(engine, "acme").horizon == 6
