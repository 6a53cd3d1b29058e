"""The model artefact: config, dataset parameters and weights in one folder.

Files: ``config.json`` (model hyper-parameters), ``spec.json`` (dataset parameters) and ``weights.pt``
(the ``state_dict``, read back with ``weights_only=True``; ``weights-1.pt``... for ensemble members).

This folder, not a pickled object, is the registry's source of truth (STYLE.md); any code version that can
build the network from the config reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from training.windows import InputSpec

__all__ = ["save_artifact", "load_artifact", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def save_artifact(path: str | Path, spec: InputSpec, model_cfg: dict, state_dict: dict | list[dict]) -> Path:
    """Write the artefact folder.

    Args:
        path: folder to create (parents included).
        spec: dataset parameters.
        model_cfg: model hyper-parameters.
        state_dict: weights (moved to CPU); a list for an ensemble (``weights.pt``, ``weights-1.pt``, ...).

    Returns:
        The folder path.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"format": FORMAT_VERSION, "model": model_cfg}, indent=2))
    (path / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
    states = state_dict if isinstance(state_dict, list) else [state_dict]
    for i, sd in enumerate(states):
        name = "weights.pt" if i == 0 else f"weights-{i}.pt"
        torch.save({k: v.detach().cpu() for k, v in sd.items()}, path / name)
    return path


def load_artifact(path: str | Path) -> tuple[InputSpec, dict, dict | list[dict]]:
    """Read an artefact folder (or any folder containing one).

    Returns:
        ``(spec, model_cfg, state_dict)``; ``state_dict`` is a list for an ensemble.

    Raises:
        FileNotFoundError: no ``spec.json`` below ``path``.
        ValueError: the format version is newer than this code reads.
    """
    path = Path(path)
    if not (path / "spec.json").exists():
        found = sorted(path.rglob("spec.json"))
        if not found:
            raise FileNotFoundError(f"{path}: no model artefact (spec.json, config.json, weights.pt) found")
        path = found[0].parent
    cfg = json.loads((path / "config.json").read_text())
    if cfg.get("format", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: artefact format {cfg['format']} is newer than this code ({FORMAT_VERSION})"
        )
    spec = InputSpec.from_dict(json.loads((path / "spec.json").read_text()))
    state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    extra = sorted(path.glob("weights-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if extra:
        state = [state, *(torch.load(p, map_location="cpu", weights_only=True) for p in extra)]
    return spec, cfg["model"], state
