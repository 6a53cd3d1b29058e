"""The hash-chained audit log and content-addressed evidence detect tampering (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from features.store._db import session_scope
from tests.workflow._helpers import propose
from workflow import audit, evidence, lifecycle
from workflow.schemas import ApproveIn

ROOT = Path(__file__).resolve().parents[2]


def _history(engine, tenants, n=3):
    admin = tenants[("a", "admin")][0]
    for _ in range(n):
        rid = propose(engine, "a").id
        with session_scope(engine) as s:
            lifecycle.approve(s, admin, rid, ApproveIn(version=2))
    return rid


def _sql(engine, stmt, **params):
    with engine.begin() as c:
        return c.execute(text(stmt), params).rowcount


def test_clean_chain_verifies(engine, tenants):
    _history(engine, tenants)
    with session_scope(engine) as s:
        reports = {r.tenant_id: r for r in audit.verify_all(s)}
    assert reports["a"].ok and reports["a"].entries == reports["a"].head_seq > 9
    assert reports["b"].ok


def test_edited_row_is_caught(engine, tenants):
    _history(engine, tenants)
    # an operator with database access "corrects" who approved, and the reason
    n = _sql(
        engine,
        "UPDATE wf_audit_log SET actor = 'someone-else', reason = 'edited' WHERE tenant_id = 'a' AND seq = 7",
    )
    assert n == 1
    with session_scope(engine) as s:
        rep = audit.verify(s, "a")
    assert not rep.ok
    assert [(p.seq, p.problem) for p in rep.problems] == [
        (7, "content does not match its sha256 (entry edited)")
    ]


def test_edit_with_recomputed_hash_breaks_the_next_link(engine, tenants):
    _history(engine, tenants)
    with session_scope(engine) as s:
        e = audit.entries(s, "a", after_seq=4, limit=1)[0]
        from workflow._journal import audit_digest

        forged = audit_digest(
            e.prev_sha256,
            tenant_id="a",
            seq=e.seq,
            at=e.at,
            actor="forger",
            action=e.action,
            entity_type=e.entity_type,
            entity_id=e.entity_id,
            before=e.before,
            after=e.after,
            reason=e.reason,
        )
    _sql(
        engine,
        "UPDATE wf_audit_log SET actor = 'forger', sha256 = :h WHERE tenant_id = 'a' AND seq = 5",
        h=forged,
    )
    with session_scope(engine) as s:
        rep = audit.verify(s, "a")
    assert [p.seq for p in rep.problems] == [6]
    assert "chain broken" in rep.problems[0].problem


def test_deleted_and_truncated_rows_are_caught(engine, tenants):
    _history(engine, tenants)
    _sql(engine, "DELETE FROM wf_audit_log WHERE tenant_id = 'a' AND seq = 4")
    with session_scope(engine) as s:
        rep = audit.verify(s, "a")
    assert any("sequence gap" in p.problem for p in rep.problems)
    with session_scope(engine) as s:
        head = audit.verify(s, "a").head_seq
    _sql(engine, "DELETE FROM wf_audit_log WHERE tenant_id = 'a' AND seq = :s", s=head)
    with session_scope(engine) as s:
        rep = audit.verify(s, "a")
    assert any("entries missing at the tail" in p.problem for p in rep.problems)


def test_edited_evidence_is_caught(engine, tenants):
    rec = propose(engine, "a")
    with session_scope(engine) as s:
        assert evidence.verify(s, "a") == []
    _sql(
        engine,
        "UPDATE wf_evidence SET body = :b WHERE sha256 = :h",
        b='{"model_version": "tft:99"}',
        h=rec.evidence_sha256,
    )
    with session_scope(engine) as s:
        assert evidence.verify(s, "a") == [rec.evidence_sha256]


def test_cli_audit_verify_exit_code(engine, db_url, tenants, tmp_path):
    _history(engine, tenants, n=1)
    env = {**os.environ, "REPLENISH_DATABASE_URL": db_url, "REPLENISH_HOME": str(tmp_path / "home")}
    cmd = [str(Path(sys.executable).parent / "replenish"), "audit", "verify"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    print(ok.stdout)
    assert ok.returncode == 0 and "tenant a: OK" in ok.stdout
    _sql(engine, "UPDATE wf_audit_log SET reason = 'edited' WHERE tenant_id = 'a' AND seq = 3")
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    print(bad.stdout)
    assert (
        bad.returncode == 1
        and "tenant a: TAMPERED" in bad.stdout
        and "seq 3: content does not match" in bad.stdout
    )
