"""Array-level kernels: hierarchical reconciliation and Monte-Carlo inventory simulation.

Nothing here imports the rest of the project. Backends (NumPy/Numba on CPU, CuPy on GPU) are chosen from the
input arrays.
"""

from kernels._backend import BackendError, get_array_module, gpu_available
from kernels.optimize import optimize_cost, optimize_level, optimize_order_up_to
from kernels.reconcile import Hierarchy, reconcile, reconcile_quantiles
from kernels.simulate import SimResult, simulate

__all__ = ["BackendError", "get_array_module", "gpu_available"]
__all__ += ["Hierarchy", "reconcile", "reconcile_quantiles"]
__all__ += ["SimResult", "simulate", "optimize_order_up_to", "optimize_cost", "optimize_level"]
