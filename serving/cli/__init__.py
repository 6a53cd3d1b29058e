"""The ``replenish`` command line.

Each area owns one module here (``_<area>.py``) exposing ``register(app)``; this module only assembles them.
Heavy imports (torch, ray, mlflow) happen inside the commands, never at import time, so ``replenish --help``
stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="replenish",
    help="Demand planning and replenishment: ingest, forecast, reconcile, simulate, plan, approve, serve.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# One line per area; each module defines register(app: typer.Typer) -> None.
_COMMAND_MODULES = [
    "serving.cli._data",
    "serving.cli._workflow",
    "serving.cli._serve",
    "serving.cli._demo",
    "serving.cli._train",
    "serving.cli._plan",
    "serving.cli._cycle",
    "serving.cli._jobs",
]


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    """Entry point of the ``replenish`` console script."""
    app()
