"""Forecast accuracy metrics on plain arrays, for backtests (re-exported from :mod:`kernels.accuracy`).

:mod:`kernels.accuracy` is the project's one definition of these figures, shared with the workflow's telemetry
and monitoring job.
"""

from kernels import bias, coverage, mae, mase, pinball, point_metrics, smape, wape

__all__ = ["mae", "wape", "mase", "smape", "bias", "pinball", "coverage", "point_metrics"]
