"""What the optional model deployment serves, and how its loader and resolver are found.

A *predictor* (:class:`UnitPredictor`) turns a list of planning-unit ids into quantile forecasts of shape
``(n, horizon, n_quantiles)``. The model deployment never knows which model it serves: it calls a *loader*
named by import path in the Serve config (``module:function``, :func:`import_callable`), which returns a
predictor for a model version, and optionally a *resolver* that says which version an alias (``champion``)
points to now (:func:`mlflow_alias_version`), so replicas can swap when the alias moves.

The decision API does not use this module: tenants' forecasts are made by the cycle's forecast stage and
served from the store (:mod:`serving.api.routes.forecasts`). The small torch stand-in model the tests' hot
swap and the serving benchmark's batching cases serve lives with the tests
(``tests/serving/_mlp_predictor.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "UnitPredictor",
    "import_callable",
    "mlflow_alias_version",
]


@runtime_checkable
class UnitPredictor(Protocol):
    """What the model deployment needs from a forecasting model.

    Attributes:
        version: registry version (or another stable id) of the model being served.
        quantiles: the quantile levels of the last output axis, ascending.
        horizon: number of future periods forecast.
    """

    version: str
    quantiles: tuple[float, ...]
    horizon: int

    def has_unit(self, unit_id: str) -> bool:
        """Whether the predictor holds the prepared inputs of ``unit_id``."""

    def predict(self, unit_ids: Sequence[str]) -> np.ndarray:
        """Quantile forecasts, shape ``(len(unit_ids), horizon, len(quantiles))``, ascending on the last."""


def import_callable(path: str) -> Callable[..., Any]:
    """Import ``module:attribute`` (or ``module.attribute``) and return the attribute.

    Raises:
        ValueError: the path is malformed, the module or the attribute does not exist.
    """
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"import path {path!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"import path {path!r}: cannot import module {module_name!r} ({exc})") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"import path {path!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"import path {path!r}: {attr!r} is not callable")
    return obj


def mlflow_alias_version(
    model_name: str | None = None, alias: str = "champion", tracking_uri: str | None = None
) -> str:
    """The registry version ``alias`` points to now (a resolver for the model deployment).

    Args:
        model_name: registered model (default: the settings' ``model_name``).
        alias: registry alias.
        tracking_uri: MLflow URI (default: the settings', SQLite under ``$REPLENISH_HOME``).

    Raises:
        LookupError: the model or the alias does not exist in the registry.
    """
    if model_name is None or tracking_uri is None:
        from features.settings import get_settings

        settings = get_settings()
        model_name = model_name or settings.model_name
        tracking_uri = tracking_uri or settings.mlflow_tracking_uri
    from training.registry import client as registry_client  # the one MLflow client

    client = registry_client(tracking_uri)
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except Exception as exc:  # MlflowException; keep mlflow out of the signature
        raise LookupError(
            f"model {model_name!r} has no version with alias {alias!r} in the registry "
            f"({tracking_uri}): {exc}"
        ) from None
