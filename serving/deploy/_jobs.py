"""The ``Jobs`` deployment: each replica runs the scheduled jobs' scheduler (:mod:`serving.jobs`).

Replicas are leader-elected through the state store (:mod:`workflow.jobs`): one runs the jobs, the others
wait and take over within ``lease_s`` when it stops or dies. Run two for high availability.
"""

from __future__ import annotations

from typing import Any

from ray import serve

__all__ = ["Jobs"]


@serve.deployment(name="Jobs", ray_actor_options={"num_cpus": 0.25})
class Jobs:
    """A Serve replica whose constructor starts the scheduler and whose shutdown stops it (lease given up).

    Args:
        config: :class:`serving.deploy._config.JobsDeploymentConfig` as a dict (its scheduling fields).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        from features.settings import load_settings
        from serving.jobs import start_scheduler

        self._settings = load_settings(**(config.get("settings") or {}))
        self._scheduler = start_scheduler(
            self._settings,
            intervals_s=config["intervals_s"],
            cycle_interval_s=config["cycle_interval_s"],
            lease_s=config["lease_s"],
            tick_s=config["tick_s"],
            retain_days=config["retain_days"],
        )

    def status(self) -> dict[str, Any]:
        """This replica's name, whether it leads, and its jobs."""
        s = self._scheduler
        return {"owner": s.owner, "leader": s.is_leader, "jobs": [j.name for j in s.specs]}

    def check_health(self) -> None:
        """Unhealthy once the scheduler's loop has died (Serve then restarts the replica)."""
        if not self._scheduler.alive:
            raise RuntimeError("the scheduler's loop has stopped")

    def __del__(self) -> None:
        sched = getattr(self, "_scheduler", None)
        if sched is not None:
            sched.stop(timeout_s=5.0)
