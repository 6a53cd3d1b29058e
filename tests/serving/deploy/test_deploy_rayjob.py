"""The RayJob that runs a tenant's cycle, and the RayService's scaling: checked offline.

* YAML lints clean: no duplicate keys, no tabs, lines <= 120 characters, every document parses;
* the pod templates pass the Kubernetes schemas strictly (``kubernetes-validate``, as test_deploy_lint.py);
* the RayJob's entrypoint is a real command of the project: the ``replenish`` script of pyproject.toml, parsed
  by the CLI's own click parser (an unknown option would fail here), and its cluster is wired as the cycle
  expects (REPLENISH_RAY_ADDRESS=auto, secrets from the Secret, the dashboard on loopback);
* the RayService's serve config validates with Ray Serve's ``ServeDeploySchema`` and scales: API replicas by
  ``autoscaling_config``, worker groups by the in-tree autoscaler between min and max replicas.
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RAYJOB = ROOT / "deploy" / "rayjob-cycle.yaml"
RAYSERVICE = ROOT / "deploy" / "kuberay-rayservice.yaml"


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _no_duplicates(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate key(s) {sorted(dup)}", node.start_mark
        )
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _lint(path: Path) -> list:
    text = path.read_text()
    assert "\t" not in text, f"{path.name}: tab characters"
    long = [i + 1 for i, line in enumerate(text.splitlines()) if len(line) > 120]
    assert not long, f"{path.name}: lines longer than 120 characters: {long}"
    return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d]


def _rayjob() -> dict:
    (doc,) = _lint(RAYJOB)
    return doc


def test_the_strict_loader_refuses_duplicate_keys():
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        yaml.load("a: 1\na: 2\n", Loader=_StrictLoader)


def test_manifests_lint_clean_and_pod_templates_pass_the_kubernetes_schemas():
    kv = pytest.importorskip("kubernetes_validate")
    version = kv.latest_version()
    _lint(RAYSERVICE)
    cluster = _rayjob()["spec"]["rayClusterSpec"]
    groups = [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]
    for name, group in groups:
        pod = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"cycle-{name}"},
            "template": group["template"],
        }
        kv.validate(pod, version, strict=True)
    bad = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "x"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i", "colour": "red"}]}},
    }
    with pytest.raises(Exception, match="colour"):
        kv.validate(bad, version, strict=True)


def _parse_cli(argv: list[str]):
    """Parse ``argv`` with the project's console script as the shell would run it; the command's params."""
    import typer

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts, (
        f"entrypoint {argv[0]!r} is not a console script of the project ({sorted(scripts)})"
    )
    module, func = scripts[argv[0]].split(":")
    from serving.cli import app, main

    assert (module, func) == ("serving.cli", "main") and callable(main)
    group = typer.main.get_command(app)
    ctx = group.make_context(argv[0], list(argv[1:]))
    head = getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])  # click < 8.2 / >= 8.2
    name, cmd, rest = group.resolve_command(ctx, [*head, *ctx.args])
    sub = cmd.make_context(name, rest, parent=ctx)
    return name, sub.params


def test_the_rayjob_runs_a_real_cli_command_for_a_tenant_on_its_cluster():
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"].replace("TENANT", "acme"))
    name, params = _parse_cli(argv)
    assert name == "cycle" and params["tenant"] == "acme" and params["as_json"] is True
    with pytest.raises(Exception, match="no-such-option"):
        _parse_cli([*argv, "--no-such-option"])  # the parser is strict: the check above can fail

    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert (
        head["rayStartParams"]["dashboard-host"] == "127.0.0.1" and head["rayStartParams"]["num-cpus"] == "0"
    )
    head_env = {e["name"]: e["value"] for e in head["template"]["spec"]["containers"][0]["env"]}
    assert head_env["REPLENISH_RAY_ADDRESS"] == "auto"  # the driver uses the cluster: serving.cluster
    pods = [head["template"]["spec"]] + [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        for c in pod["containers"]:
            assert {"secretRef": {"name": "replenish"}} in c["envFrom"]
            assert not any(w in e["name"] for e in c["env"] for w in ("SECRET", "PASSWORD", "DATABASE_URL"))
            assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"]
    assert cluster["enableInTreeAutoscaling"] is True
    for g in cluster["workerGroupSpecs"]:
        assert 1 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]


def test_the_settings_pick_the_cluster_from_the_rayjob_environment(monkeypatch):
    from features.settings import get_settings
    from serving.cluster import ClusterOptions, cluster_options

    monkeypatch.delenv("REPLENISH_RAY_ADDRESS", raising=False)
    assert cluster_options(get_settings()) is None  # the default: everything in-process
    monkeypatch.setenv("REPLENISH_RAY_ADDRESS", "auto")
    assert cluster_options(get_settings()) == ClusterOptions(address="auto")
    with pytest.raises(ValueError, match="partition_units=0"):
        ClusterOptions(address="auto", partition_units=0)


def test_the_rayservice_serve_config_validates_and_scales():
    from ray.serve.schema import ServeDeploySchema

    docs = {d["kind"]: d for d in _lint(RAYSERVICE)}
    service = docs["RayService"]
    serve = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))
    api = serve.applications[0].args["api"]["autoscaling_config"]
    assert 1 <= api["min_replicas"] < api["max_replicas"]
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert all(g["minReplicas"] < g["maxReplicas"] for g in cluster["workerGroupSpecs"])
