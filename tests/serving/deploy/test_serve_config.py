"""Serve config files: they parse as Ray Serve configs and as our typed args, stay in step, and fail
clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _schema(doc):
    from ray.serve.schema import ServeDeploySchema

    return ServeDeploySchema.model_validate(doc)


@pytest.mark.parametrize("name", ["serve.yaml", "serve-gpu.yaml"])
def test_config_files_are_valid_serve_configs_and_typed_args(name):
    from serving.deploy import ServeAppConfig, load_serve_file

    doc = yaml.safe_load((ROOT / "configs" / name).read_text())
    _schema(doc)
    sf = load_serve_file(ROOT / "configs" / name)
    assert sf.import_path == "serving.deploy:build_app"
    assert isinstance(sf.args, ServeAppConfig)
    # Tenants are answered from their stored forecasts: no global model or plan inputs in the shipped files.
    assert sf.args.model is None
    assert "plan_inputs" not in (doc["applications"][0]["args"].get("api") or {})
    opts = sf.args.api.deployment_options()
    assert opts["max_queued_requests"] > 0, "a bounded queue is what turns overload into 503"
    assert 0 < sf.args.api.forecast_check_interval_s <= 10
    if name == "serve-gpu.yaml":
        assert "autoscaling_config" in opts and "num_replicas" not in opts


def test_an_optional_model_deployment_needs_a_loader():
    from serving.deploy import ServeAppConfig

    with pytest.raises(ValueError, match=r"model\.loader"):
        ServeAppConfig.parse({"model": {"max_batch_size": 8}})
    cfg = ServeAppConfig.parse({"model": {"loader": "tests.serving._mlp_predictor:make_mlp_predictor"}})
    assert cfg.model.resolver is None and cfg.model.user_config()["max_batch_size"] == 64


def test_kuberay_manifest_embeds_the_gpu_config():
    manifest = yaml.safe_load((ROOT / "deploy" / "kuberay-rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService"
    inner = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    _schema(inner)
    gpu = yaml.safe_load((ROOT / "configs" / "serve-gpu.yaml").read_text())
    assert inner["applications"] == gpu["applications"]
    workers = manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert any(
        c["resources"]["limits"].get("nvidia.com/gpu")
        for w in workers
        for c in w["template"]["spec"]["containers"]
    )


def test_bad_args_name_the_field(tmp_path):
    from serving.deploy import ServeAppConfig, load_serve_file

    with pytest.raises(ValueError, match=r"model\.max_batch_size = 0"):
        ServeAppConfig.parse({"model": {"max_batch_size": 0}})
    with pytest.raises(ValueError, match=r"api\.colour"):
        ServeAppConfig.parse({"api": {"colour": "red"}})
    with pytest.raises(ValueError, match="max_queued_requests"):
        ServeAppConfig.parse({"api": {"max_queued_requests": 0}})
    bad = tmp_path / "serve.yaml"
    bad.write_text("applications:\n  - name: x\n    args: {model: {batch_wait_timeout_s: -1}}\n")
    with pytest.raises(ValueError, match=r"(?s)application 'x'.*model\.batch_wait_timeout_s = -1"):
        load_serve_file(bad)
    with pytest.raises(ValueError, match="not found"):
        load_serve_file(tmp_path / "missing.yaml")


def test_replenish_serve_check_says_what_each_tenant_is_served_from(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from serving.cli import app
    from tests.serving._serve_tenants import make_tenants, store_forecasts

    home = tmp_path / "home"
    monkeypatch.setenv("REPLENISH_HOME", str(home))
    w = make_tenants(home, {"a": 1, "b": 2}, n_series=3, n_periods=20)
    store_forecasts("a", w.data["a"], scale=1.0, run_id="a-run", facts_dir=w.settings.facts_dir)
    w.engine.dispose()
    result = CliRunner().invoke(app, ["serve", "--check"])
    assert result.exit_code == 0, result.output
    assert "tenant a: 3 units from base forecast run a-run (model version 7" in result.output
    assert "tenant b: not served yet (409): run `replenish cycle --tenant b --train`" in result.output
