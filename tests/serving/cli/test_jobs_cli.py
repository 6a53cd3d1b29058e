"""``replenish jobs runs``, ``replenish monitoring run``, and the jobs ``replenish serve --check`` names."""

from __future__ import annotations

from typer.testing import CliRunner


def test_jobs_and_monitoring_commands(tmp_path, monkeypatch):
    from features.settings import get_settings
    from features.store._db import make_engine, session_scope
    from serving.cli import app
    from serving.migrations import migrate_store
    from workflow import access
    from workflow.jobs import JobSpec, Scheduler

    db = tmp_path / "state.db"
    monkeypatch.setenv("REPLENISH_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("REPLENISH_TENANT", "acme")
    engine = make_engine(f"sqlite:///{db}")
    migrate_store(engine)
    runner = CliRunner()
    assert "no job runs recorded" in runner.invoke(app, ["jobs", "runs"]).output
    with session_scope(engine) as s:
        access.ensure_tenant(s, "acme")
    sched = Scheduler(engine, [JobSpec("expire", 60, lambda: {"acme": 0})], owner="host:1:x")
    sched.tick()
    sched.stop()
    out = runner.invoke(app, ["jobs", "runs"]).output
    assert "expire" in out and "succeeded" in out and "host:1:x" in out
    res = runner.invoke(app, ["monitoring", "run"])
    assert res.exit_code == 0, res.output
    assert "monitoring run mon-" in res.output and "of tenant acme" in res.output
    assert "pairs" not in res.output  # no forecasts stored: no accuracy figures
    res = runner.invoke(app, ["serve", "--check"])
    assert res.exit_code == 0, res.output
    assert "scheduled jobs (1 leader-elected replica(s)): dispatch every 10 s" in res.output
    assert get_settings().tenant == "acme"
    engine.dispose()
