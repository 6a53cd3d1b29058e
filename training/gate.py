"""The champion gate.

The alias ``champion`` moves to a new version only if its backtest WAPE beats both the current champion's
and the best baseline's.

:func:`decide` is the pure rule; :func:`apply_gate` reads the current champion from the registry, records the
decision and the figures as tags on the candidate version, and moves the alias when the rule says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GateDecision", "decide", "apply_gate", "CHAMPION"]

CHAMPION = "champion"


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the gate.

    Attributes:
        promote: whether the candidate becomes champion.
        reason: one line a person can read.
        candidate_wape: the candidate's backtest WAPE.
        champion_wape: the current champion's (None if there is none).
        baseline_wape: the best baseline's on the same backtest.
    """

    promote: bool
    reason: str
    candidate_wape: float
    champion_wape: float | None
    baseline_wape: float


def decide(
    candidate_wape: float, baseline_wape: float, champion_wape: float | None, tolerance: float = 0.0
) -> GateDecision:
    """Apply the rule: strictly better than the best baseline and than the current champion (if any).

    With ``tolerance > 0`` the candidate may be up to that share worse than the best baseline (a served
    selection that is itself made of baselines ties with the best of them). A NaN candidate never promotes.
    """
    if candidate_wape is None or math.isnan(candidate_wape):
        return GateDecision(
            False, "candidate has no backtest WAPE", candidate_wape, champion_wape, baseline_wape
        )
    within = tolerance > 0 and candidate_wape <= baseline_wape * (1 + tolerance)
    ok = candidate_wape < baseline_wape or within
    if not ok:
        return GateDecision(
            False,
            f"WAPE {candidate_wape:.4f} does not beat the best baseline {baseline_wape:.4f}",
            candidate_wape,
            champion_wape,
            baseline_wape,
        )
    if champion_wape is not None and not candidate_wape < champion_wape:
        return GateDecision(
            False,
            f"WAPE {candidate_wape:.4f} does not beat the champion {champion_wape:.4f}",
            candidate_wape,
            champion_wape,
            baseline_wape,
        )
    against = "no champion yet" if champion_wape is None else f"champion {champion_wape:.4f}"
    return GateDecision(
        True,
        f"WAPE {candidate_wape:.4f} beats baseline {baseline_wape:.4f} and {against}",
        candidate_wape,
        champion_wape,
        baseline_wape,
    )


def apply_gate(
    client,
    model_name: str,
    version: str,
    candidate_wape: float,
    baseline_wape: float,
    force: bool = False,
    tolerance: float = 0.0,
) -> GateDecision:
    """Decide, tag the version with the decision and figures, and move ``champion`` if promoted.

    Args:
        client: an ``mlflow.MlflowClient``.
        model_name: registered model name.
        version: the candidate version.
        candidate_wape: its backtest WAPE.
        baseline_wape: the best baseline's backtest WAPE.
        force: promote regardless of the rule (a person's explicit ``models promote``); recorded as such.
        tolerance: see :func:`decide`.

    Returns:
        The :class:`GateDecision`.
    """
    champion_wape = None
    try:
        current = client.get_model_version_by_alias(model_name, CHAMPION)
    except Exception:  # no alias yet
        current = None
    if current is not None and str(current.version) != str(version):
        tag = current.tags.get("backtest_wape")
        champion_wape = float(tag) if tag is not None else None
    d = decide(candidate_wape, baseline_wape, champion_wape, tolerance)
    if force and not d.promote:
        d = GateDecision(True, f"forced promotion ({d.reason})", candidate_wape, champion_wape, baseline_wape)
    tags = {
        "backtest_wape": f"{candidate_wape:.6f}",
        "baseline_wape": f"{baseline_wape:.6f}",
        "champion_wape_before": "none" if champion_wape is None else f"{champion_wape:.6f}",
        "gate_decision": "promoted" if d.promote else "rejected",
        "gate_reason": d.reason,
    }
    for k, v in tags.items():
        client.set_model_version_tag(model_name, str(version), k, v)
    if d.promote:
        client.set_registered_model_alias(model_name, CHAMPION, str(version))
    return d
