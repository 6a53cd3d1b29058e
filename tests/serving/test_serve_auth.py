"""Auth on the forecast routes (in-process app, real SQLite): the brief key cache never outlives a revocation
by more than its TTL, and roles are checked on every call."""

from __future__ import annotations

import time


def test_forecast_auth_roles_and_revocation(tmp_path):
    from fastapi.testclient import TestClient

    from features.settings import load_settings
    from features.store._db import session_scope
    from features.store._migrate import migrate
    from serving.api._decision import build_decision_app
    from serving.api.routes import forecasts
    from serving.api.routes.forecasts import LocalForecaster
    from serving.deploy import make_mlp_predictor
    from workflow import access

    app = build_decision_app(
        load_settings(home=tmp_path / "home"),
        LocalForecaster(make_mlp_predictor({"n_units": 5, "hidden": 8}, version="3")),
    )
    migrate(app.state.engine)
    with session_scope(app.state.engine) as s:
        access.ensure_tenant(s, "a")
        viewer_id, viewer = access.create_key(s, "a", ["viewer"], actor="test")
        admin = access.create_key(s, "a", ["admin"], actor="test")[1]
    app.state.key_cache = forecasts._KeyCache(0.3)
    body = {"units": ["u00001"]}
    with TestClient(app) as c:
        assert c.post("/v1/forecasts", json=body).status_code == 401
        assert c.post("/v1/forecasts", json=body, headers={"X-API-Key": "rpk_x_y"}).status_code == 401
        r = c.post("/v1/forecasts", json=body, headers={"X-API-Key": viewer})
        assert r.status_code == 200 and r.json()["model_version"] == "3"
        assert c.post("/v1/forecasts", json=body, headers={"X-API-Key": admin}).status_code == 200
        with session_scope(app.state.engine) as s:
            access.revoke_key(s, "a", viewer_id, actor="test")
        time.sleep(0.35)
        assert c.post("/v1/forecasts", json=body, headers={"X-API-Key": viewer}).status_code == 401
