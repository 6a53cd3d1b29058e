"""Auth on the forecast routes (in-process app, real SQLite): the brief key cache never outlives a revocation
by more than its TTL, and roles are checked on every call."""

from __future__ import annotations

import time

from tests.serving._serve_tenants import make_tenants, store_forecasts


def test_forecast_auth_roles_and_revocation(tmp_path):
    from fastapi.testclient import TestClient

    from features.store._db import session_scope
    from serving.api.main import build_decision_app
    from serving.api.routes import forecasts
    from workflow import access

    w = make_tenants(tmp_path / "home", {"a": 1}, n_series=3, n_periods=20)
    store_forecasts(
        "a", w.data["a"], scale=1.0, run_id="a-1", model_version="3", facts_dir=w.settings.facts_dir
    )
    app = build_decision_app(w.settings)
    with session_scope(w.engine) as s:
        viewer_id, viewer = access.create_key(s, "a", ["viewer"], actor="test")
        admin = access.create_key(s, "a", ["admin"], actor="test")[1]
    app.state.key_cache = forecasts._KeyCache(0.3)
    body = {"units": w.units["a"][:1]}
    with TestClient(app) as c:
        assert c.post("/v1/forecasts", json=body).status_code == 401
        assert c.post("/v1/forecasts", json=body, headers={"X-API-Key": "rpk_x_y"}).status_code == 401
        r = c.post("/v1/forecasts", json=body, headers={"X-API-Key": viewer})
        assert r.status_code == 200 and r.json()["model_version"] == "3"
        assert c.post("/v1/forecasts", json=body, headers={"X-API-Key": admin}).status_code == 200
        with session_scope(w.engine) as s:
            access.revoke_key(s, "a", viewer_id, actor="test")
        time.sleep(0.35)
        assert c.post("/v1/forecasts", json=body, headers={"X-API-Key": viewer}).status_code == 401
    w.engine.dispose()
