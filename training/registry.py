"""MLflow tracking and registry for the TFT.

Experiment set-up, run logging, model versions, artefact download.

Embedded default: SQLite backend ``$REPLENISH_HOME/mlflow.db`` with artefacts in ``$REPLENISH_HOME/mlruns``
(from :mod:`features.settings`); a tracking-server URL in the config or settings works the same.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = [
    "tracking_uri",
    "client",
    "ensure_experiment",
    "log_training_run",
    "download_artifact",
    "list_models",
    "list_versions",
    "PIP_REQUIREMENTS",
]

# Given explicitly: MLflow's requirement inference imports the model and takes ~14 s.
PIP_REQUIREMENTS = ["torch", "pytorch-forecasting", "lightning", "mlflow", "numpy", "pandas", "pydantic"]


def tracking_uri(uri: str | None = None) -> str:
    """The MLflow tracking URI: ``uri`` if given, else the settings default (SQLite under REPLENISH_HOME)."""
    if uri:
        return uri
    from features.settings import get_settings

    s = get_settings()
    s.home.mkdir(parents=True, exist_ok=True)
    return s.mlflow_tracking_uri


def _artifact_root() -> str:
    from features.settings import get_settings

    root = Path(get_settings().mlflow_artifact_root)
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve().as_uri()


def client(uri: str | None = None):
    """An ``MlflowClient`` on the tracking URI (and the registry on the same backend)."""
    import mlflow

    u = tracking_uri(uri)
    mlflow.set_tracking_uri(u)
    mlflow.set_registry_uri(u)
    return mlflow.MlflowClient(tracking_uri=u, registry_uri=u)


def ensure_experiment(name: str, uri: str | None = None) -> str:
    """Experiment id for ``name``, created with its artefacts under ``$REPLENISH_HOME/mlruns`` if new."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    loc = _artifact_root() if tracking_uri(uri).startswith("sqlite") else None
    return c.create_experiment(name, artifact_location=loc)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def log_training_run(
    config, fitted, backtest_metrics: dict, figures: dict, tables: dict | None = None, uri: str | None = None
) -> tuple[str, str]:
    """Track one training run and register its model as a new version.

    Args:
        config: the ``TrainConfig``.
        fitted: the ``FittedTFT``.
        backtest_metrics: flat ``{name: float}`` backtest figures.
        figures: ``{file name: matplotlib figure}`` (fan charts).
        tables: ``{file name: DataFrame}`` logged as CSV (per-series and per-level metrics).
        uri: tracking URI override.

    Returns:
        ``(run_id, version)``.
    """
    import mlflow

    from training.artifact import save_artifact

    c = client(uri or config.tracking_uri)
    exp_id = ensure_experiment(config.name, uri or config.tracking_uri)
    model_file = str(Path(__file__).with_name("_pyfunc_model.py"))
    with mlflow.start_run(experiment_id=exp_id) as run:
        params = {k: str(v)[:500] for k, v in _flatten(config.model_dump(mode="json")).items()}
        params["best_epoch"] = str(fitted.best_epoch)
        mlflow.log_params(params)
        for h in fitted.history:
            step = int(h["epoch"])
            mlflow.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=step)
        mlflow.log_metrics({**backtest_metrics, **fitted.validation, "train_seconds": fitted.train_seconds})
        mlflow.log_dict(
            {
                "blend": fitted.spec.blend,
                "calibration": fitted.spec.calibration,
                "selection": getattr(fitted, "selection", {}),
            },
            "postprocess.json",
        )
        for name, fig in figures.items():
            mlflow.log_figure(fig, name)
        for name, df in (tables or {}).items():
            mlflow.log_text(df.to_csv(index=False), name)
        with tempfile.TemporaryDirectory() as tmp:
            art = save_artifact(Path(tmp) / "tft", fitted.spec, fitted.model_cfg, fitted.state_dict)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=model_file,
                artifacts={"tft": str(art)},
                pip_requirements=PIP_REQUIREMENTS,
            )
        from training.quiet import muted_stderr

        with muted_stderr():  # MLflow prints "Successfully registered ..." straight to stderr
            mv = mlflow.register_model(info.model_uri, config.name)
        c.set_model_version_tag(config.name, mv.version, "run_id", run.info.run_id)
        return run.info.run_id, str(mv.version)


def _resolve(c, name: str, version_or_alias: str | int):
    v = str(version_or_alias)
    if v.isdigit():
        return c.get_model_version(name, v)
    return c.get_model_version_by_alias(name, v)


def download_artifact(
    version_or_alias: str | int = "champion", model_name: str | None = None, uri: str | None = None
) -> tuple[Path, str]:
    """Download a registered version's artefact folder.

    Returns:
        ``(local folder, version number)``.

    Raises:
        LookupError: no such model, version or alias (the message says which).
    """
    import mlflow

    from features.settings import get_settings

    name = model_name or get_settings().model_name
    c = client(uri)
    try:
        mv = _resolve(c, name, version_or_alias)
    except Exception as exc:
        raise LookupError(
            f"model {name!r} has no version or alias {version_or_alias!r} in {tracking_uri(uri)}"
        ) from exc
    dst = Path(tempfile.mkdtemp(prefix="replenish-model-"))
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dst)
    )
    return Path(local), str(mv.version)


def list_versions(model_name: str | None = None, uri: str | None = None) -> list[dict]:
    """Registered versions, newest first, with their aliases and gate tags."""
    from features.settings import get_settings

    name = model_name or get_settings().model_name
    c = client(uri)
    try:
        rm = c.get_registered_model(name)
    except Exception:
        return []
    aliases: dict[str, list[str]] = {}
    for a, v in (rm.aliases or {}).items():
        aliases.setdefault(str(v), []).append(a)
    rows = []
    for mv in c.search_model_versions(f"name='{name}'"):
        rows.append(
            {
                "version": str(mv.version),
                "aliases": ",".join(aliases.get(str(mv.version), [])),
                "backtest_wape": mv.tags.get("backtest_wape", ""),
                "baseline_wape": mv.tags.get("baseline_wape", ""),
                "gate": mv.tags.get("gate_decision", ""),
                "run_id": mv.run_id,
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)


def list_models(uri: str | None = None) -> list[dict]:
    """Every registered model with its tenant tag, newest version and champion, sorted by name."""
    c = client(uri)
    rows = []
    for rm in c.search_registered_models():
        versions = [int(mv.version) for mv in c.search_model_versions(f"name='{rm.name}'")]
        rows.append(
            {
                "name": rm.name,
                "tenant": (rm.tags or {}).get("tenant", ""),
                "versions": len(versions),
                "latest": str(max(versions)) if versions else "",
                "champion": str((rm.aliases or {}).get("champion", "")),
            }
        )
    return sorted(rows, key=lambda r: r["name"])
