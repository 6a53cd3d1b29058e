import threading

import pytest
import sqlalchemy as sa

from features.store._db import session_scope
from features.store._migrate import migrate
from features.store._tenants import Tenant


def test_migrate_is_idempotent_and_creates_tenants(engine):
    migrate(engine)  # second run: nothing to do, no error
    assert "tenants" in sa.inspect(engine).get_table_names()


def test_session_scope_rolls_back_the_whole_change(engine):
    with session_scope(engine) as s:
        s.add(Tenant(tenant_id="a", name="A"))
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as s:
            s.add(Tenant(tenant_id="b", name="B"))
            s.flush()
            s.add(Tenant(tenant_id="a", name="duplicate"))
            s.flush()
    with session_scope(engine) as s:
        ids = sorted(t.tenant_id for t in s.scalars(sa.select(Tenant)))
    assert ids == ["a"]  # "b" was rolled back with the failing change; "a" is intact


def test_concurrent_writers_do_not_lose_rows(engine):
    def write(i):
        with session_scope(engine) as s:
            s.add(Tenant(tenant_id=f"t{i}", name=str(i)))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with session_scope(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Tenant)) == 8


def test_ensure_tenant_creates_once_in_the_callers_transaction(engine):
    from features.store import ensure_tenant

    with session_scope(engine) as s:
        assert ensure_tenant(s, "t1", "Tenant one") is True
        assert ensure_tenant(s, "t1") is False  # seen in the same transaction
    with pytest.raises(RuntimeError):
        with session_scope(engine) as s:
            assert ensure_tenant(s, "t2") is True
            raise RuntimeError("the caller's change fails")
    with session_scope(engine) as s:
        assert ensure_tenant(s, "t1") is False
        rows = {t.tenant_id: t.name for t in s.scalars(sa.select(Tenant))}
    assert rows == {"t1": "Tenant one"}  # t2 went with the caller's rollback
