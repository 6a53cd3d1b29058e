"""Temporal Fusion Transformer in three layers.

``module`` (plain network), ``lightning_module`` (training step), ``estimator`` (data + trainer wiring).
Import from the defining modules.
"""

__all__: list[str] = []
