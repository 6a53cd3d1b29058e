"""Quiet output: our dependencies' warnings, log lines and progress bars filtered unless asked for.

Lightning prints its accelerator banner and tips, MLflow its run links, artefact download bars and
deprecation notes, pandas/torch/pytorch-forecasting their future warnings: useful when debugging, noise in
a planner's terminal. :func:`quiet` filters them for the duration of a ``with`` block (the CLI, the cycle and
the demo wrap their work in it); ``quiet(verbose=True)`` leaves everything as is. Warnings raised by our own
modules (e.g. :class:`ShortSeriesWarning`) are never filtered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

__all__ = [
    "DEPENDENCY_LOGGERS",
    "DEPENDENCY_MODULES",
    "ShortSeriesWarning",
    "is_quiet",
    "muted_stderr",
    "quiet",
]

#: Modules whose warnings are filtered (prefix match on the module that raises them).
DEPENDENCY_MODULES = (
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "lightning_utilities",
    "pytorch_forecasting",
    "mlflow",
    "torch",
    "pandas",
    "polars",
    "sklearn",
    "pydantic",
    "alembic",
    "sqlalchemy",
    "numpy",
)
#: Loggers turned down to errors.
DEPENDENCY_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "pytorch_lightning",
    "lightning_fabric",
    "mlflow",
    "alembic",
    "urllib3",
    "git",
)
#: Environment switches of our dependencies' progress bars and banners.
_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "TQDM_DISABLE": "1",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
}


_QUIET = 0


def is_quiet() -> bool:
    """Whether a :func:`quiet` block (not verbose) is active: callers then drop dependencies' own prints."""
    return _QUIET > 0


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
    """Swallow what a dependency prints to stderr inside the block, when :func:`quiet` is active."""
    if not is_quiet():
        yield
        return
    import io
    import sys

    saved = sys.stderr
    sys.stderr = io.StringIO()
    try:
        yield
    finally:
        sys.stderr = saved


class ShortSeriesWarning(UserWarning):
    """Some series are too short to give a training window; they are named, never silently dropped."""


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[None]:
    """Filter dependencies' warnings, logs and progress bars inside the block (unless ``verbose``).

    Restores the warning filters, logger levels and environment variables on exit.

    Args:
        verbose: show everything (the block then changes nothing).
    """
    if verbose:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in _ENV}
    saved_levels = {name: logging.getLogger(name).level for name in DEPENDENCY_LOGGERS}
    with warnings.catch_warnings():
        for mod in DEPENDENCY_MODULES:
            warnings.filterwarnings("ignore", module=rf"{mod}(\..*)?$")
        # Lightning and MLflow warn through their own modules but also re-raise from ours' call sites
        for msg in (
            ".*does not have many workers.*",
            ".*is an instance of `nn.Module`.*",
            ".*Consider setting `persistent_workers.*",
            ".*validation_step.*",
            ".*GPU available.*",
            ".*LeafSpec.*",
            ".*pkg_resources.*",
            ".*Inferred schema contains integer column.*",
        ):
            warnings.filterwarnings("ignore", message=msg)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("default", category=ShortSeriesWarning)  # ours: always shown
        shown = warnings.showwarning

        def _show(message, category, filename, lineno, file=None, line=None):
            # a warning attributed to an installed package (whatever its module name at run time) is theirs
            if "site-packages" in str(filename) or "dist-packages" in str(filename):
                return
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = _show
        global _QUIET
        _QUIET += 1
        os.environ.update(_ENV)
        for name in DEPENDENCY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        # Lightning and MLflow reset their loggers' levels when first imported (inside the block): info
        # lines (accelerator banner, tips, "Trainer.fit stopped", run links) are dropped for everyone.
        saved_disable = logging.root.manager.disable
        logging.disable(logging.INFO)
        try:
            yield
        finally:
            _QUIET -= 1
            logging.disable(saved_disable)
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
