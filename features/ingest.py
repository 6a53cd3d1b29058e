"""Ingest a CSV or Parquet file of one KIND: validate against its contract, quarantine, store atomically.

::

    from features.ingest import ingest
    result = ingest("sales", "sales.csv", tenant="demo")
    result.exit_code      # 0 all stored, 1 some rows quarantined, 2 nothing usable
    result.summary()      # one line per count

What happens to a file (``docs/contracts.md`` has the contracts):

1. A file missing required columns is refused whole, naming them (exit code 2); nothing is read further.
2. The file's SHA-256 is its batch identity: a file already stored for this tenant and KIND adds nothing.
3. Every row is checked by vectorised polars expressions (types, ranges, allowed values, identities resolved
   via :mod:`features.identity`, cross-field rules, keys unique within the file). Each violation becomes a
   quarantine entry with file, row number (1 = first data row), field, raw value and expected form.
4. Valid rows are compared with what is stored (same key and values: duplicate, dropped) and stored in one
   atomic step: facts as Parquet partitions (temp files renamed into place), reference data in one SQL
   transaction, which also records the batch and its quarantine entries. Any failure leaves the stores as they
   were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from features._ingest_read import ROW, content_hash, file_format, read_header, scan_raw
from features._ingest_store import split_against_stored_facts, upsert_sql
from features._ingest_validate import build_plan, mark_duplicate_keys, violations
from features.contracts import Contract, get_contract
from features.facts import delete_batch, write_partitions
from features.identity import load_resolver
from features.store import IngestBatch, QuarantineRow, ensure_tenant, session_scope, utcnow

__all__ = ["QUARANTINE_LIMIT", "STAGES", "IngestResult", "ingest", "list_batches", "list_quarantine"]

#: Most quarantine entries kept per batch (the counts always cover every row).
QUARANTINE_LIMIT = 100_000
#: Stages reported to the ``progress`` callback, in order.
STAGES = ("hashing", "reading and validating", "comparing with stored rows", "writing", "recording")


@dataclasses.dataclass(frozen=True)
class IngestResult:
    """What became of one file.

    Attributes:
        status: ``stored`` (every row usable), ``partial`` (some quarantined), ``rejected`` (nothing usable),
            ``refused`` (file not read: missing columns, unreadable), ``already_ingested`` (same file before).
        rows_stored: rows newly stored (facts written, SQL rows inserted).
        rows_updated: SQL rows whose stored values changed.
        rows_duplicate: rows already stored with the same values.
        rows_quarantined: rows with at least one violation.
        violations_by_field: number of violating rows per reported field.
    """

    kind: str
    file: str
    status: str
    batch_id: str | None = None
    rows_total: int = 0
    rows_stored: int = 0
    rows_updated: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    missing_columns: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()
    violations_by_field: dict[str, int] = dataclasses.field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 all stored (or already), 1 some rows quarantined, 2 nothing usable."""
        if self.status == "already_ingested":
            return 0
        if self.status in ("refused", "rejected"):
            return 2
        return 1 if self.rows_quarantined else 0

    def summary(self) -> str:
        """Human-readable summary, several lines."""
        if self.status == "refused":
            return f"{self.file}: refused ({self.kind}): {self.message}"
        if self.status == "already_ingested":
            return f"{self.file}: {self.message}"
        lines = [f"{self.file}: {self.kind} batch {self.batch_id}: {self.status}",
                 f"  rows read        {self.rows_total:>12,d}",
                 f"  stored (new)     {self.rows_stored:>12,d}"]
        if self.rows_updated:
            lines.append(f"  updated          {self.rows_updated:>12,d}")
        lines += [f"  already stored   {self.rows_duplicate:>12,d}",
                  f"  quarantined      {self.rows_quarantined:>12,d}"]
        for field, n in sorted(self.violations_by_field.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {field}: {n:,d} row(s)")
        if self.ignored_columns:
            lines.append(f"  ignored columns: {', '.join(self.ignored_columns)}")
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


@contextlib.contextmanager
def _lock(home: Path, tenant: str, kind: str) -> Iterator[None]:
    """One ingest per tenant and KIND at a time (a re-send racing its original must see it)."""
    folder = Path(home) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"ingest.{tenant}.{kind}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _record(conn, *, batch_id: str, tenant: str, contract: Contract, file_name: str, digest: str, status: str,
            counts: dict[str, int], message: str | None, entries: pl.DataFrame | None) -> None:
    conn.execute(insert(IngestBatch.__table__), [{
        "batch_id": batch_id, "tenant_id": tenant, "kind": contract.kind, "file_name": file_name,
        "content_hash": digest, "status": status, "message": message, "created_at": utcnow(), **counts}])
    if entries is not None and entries.height:
        now = utcnow()
        records = entries.select("row_number", "field", "value", "expected", "file_name").to_dicts()
        for r in records:
            r.update(tenant_id=tenant, batch_id=batch_id, kind=contract.kind, created_at=now)
        conn.execute(insert(QuarantineRow.__table__), records)


@dataclasses.dataclass
class _Job:
    """One file being ingested: what the stages share."""

    contract: Contract
    path: Path
    fmt: str
    tenant: str
    engine: Engine
    settings: Any
    step: Callable[[str], None]
    limit: int
    started: float
    digest: str = ""
    present: list[str] = dataclasses.field(default_factory=list)
    extra: tuple[str, ...] = ()
    keep: list[str] = dataclasses.field(default_factory=list)
    resolvers: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return str(self.path)

    def done(self, **kw) -> IngestResult:
        return IngestResult(kind=self.contract.kind, file=self.file_name,
                            seconds=time.perf_counter() - self.started, **kw)


@dataclasses.dataclass
class _Checked:
    """Outcome of validation: the usable rows and the quarantine entries."""

    good: pl.DataFrame
    entries: pl.DataFrame | None
    n_bad: int
    rows_total: int
    by_field: dict[str, int]


def ingest(kind: str, path: str | Path, *, tenant: str | None = None, engine: Engine | None = None,
           settings=None, progress: Callable[[str], None] | None = None,
           quarantine_limit: int = QUARANTINE_LIMIT) -> IngestResult:
    """Validate ``path`` against the contract of ``kind`` and store its valid rows for ``tenant``.

    Args:
        kind: one of ``features.contracts.KINDS``.
        path: a ``.csv`` or ``.parquet`` file.
        tenant: defaults to ``settings.tenant``; created when missing.
        engine: state store; default ``make_engine(settings.database_url)``, migrated.
        settings: ``features.settings.Settings``; default ``get_settings()``.
        progress: called with each name of :data:`STAGES` as it starts.
        quarantine_limit: most quarantine entries kept for this batch.

    Raises:
        ValueError: unknown ``kind`` or file type.
        FileNotFoundError: ``path`` does not exist.
    """
    started = time.perf_counter()
    contract = get_contract(kind)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = file_format(path)
    if settings is None:
        from features.settings import get_settings

        settings = get_settings()
    if engine is None:
        from features.store import make_engine, migrate

        settings.ensure_home()
        engine = make_engine(settings.database_url)
        migrate(engine)
    job = _Job(contract=contract, path=path, fmt=fmt, tenant=tenant or settings.tenant, engine=engine,
               settings=settings, step=progress or (lambda _stage: None), limit=quarantine_limit,
               started=started)
    with session_scope(engine) as s:
        ensure_tenant(s, job.tenant)

    try:
        header = read_header(path, fmt)
    except Exception as exc:  # polars/pyarrow errors on corrupt files
        return job.done(status="refused", message=f"cannot read the file as {fmt}: {exc}")
    missing = tuple(c for c in contract.required if c not in header)
    if missing:
        return job.done(status="refused", missing_columns=missing,
                        message=f"missing required column(s): {', '.join(missing)} "
                                f"(expected columns: {', '.join(contract.names)})")
    job.present = [c for c in contract.names if c in header]
    job.extra = tuple(c for c in header if c not in contract.names)
    job.keep = list(job.extra) if kind == "skus" else []

    job.step("hashing")
    job.digest = content_hash(path)
    with _lock(settings.home, job.tenant, kind):
        with engine.connect() as conn:
            prior = conn.execute(
                select(IngestBatch.batch_id, IngestBatch.created_at)
                .where(IngestBatch.tenant_id == job.tenant, IngestBatch.kind == kind,
                       IngestBatch.content_hash == job.digest, IngestBatch.status.in_(("stored", "partial")))
            ).first()
            if prior is not None:
                return job.done(status="already_ingested", batch_id=prior[0],
                                message=f"already ingested as batch {prior[0]} at {prior[1]:%Y-%m-%d %H:%M}: "
                                        "nothing added")
            job.resolvers = {f.name: load_resolver(conn, job.tenant, f.ref) for f in contract.fields
                             if f.ref and f.name in job.present}
        job.step("reading and validating")
        try:
            checked = _check(job)
        except pl.exceptions.PolarsError as exc:  # malformed CSV (ragged lines, bad quoting, encoding)
            return job.done(status="refused", message=f"cannot read the file as {fmt}: {exc}".splitlines()[0])
        if contract.store == "facts":
            return _store_facts(job, checked)
        return _store_sql(job, checked)


_FAST_TYPES = {"int": pl.Int64, "float": pl.Float64, "date": pl.Date}


def _validate(job: _Job) -> tuple[pl.DataFrame, list]:
    """Typed rows and check flags of the whole file (see ``features._ingest_validate``).

    CSV fast path: numbers and dates are parsed by the CSV reader itself; a value it cannot parse comes back
    null, so only rows with a null in such a column are read again as text and checked by the text parser
    (which tells an empty cell from a malformed one and reports the raw value).
    """
    fast = {f.name: _FAST_TYPES[f.dtype] for f in job.contract.fields
            if f.name in job.present and f.dtype in _FAST_TYPES} if job.fmt == "csv" else {}
    args = (job.contract, job.present, job.resolvers, job.keep)
    plan, checks = build_plan(scan_raw(job.path, job.fmt, fast), *args)
    df = plan.collect()
    if fast:
        unsure = pl.any_horizontal(pl.col(c).is_null() for c in fast)
        rows = df.filter(unsure)[ROW]
        if rows.len():
            text = scan_raw(job.path, job.fmt).filter(pl.col(ROW).is_in(rows.implode()))
            again, _ = build_plan(text, *args)
            df = pl.concat([df.filter(~unsure), again.collect()], how="vertical")
    return df, checks


def _check(job: _Job) -> _Checked:
    """Validate every row; build the quarantine entries of the bad ones."""
    contract = job.contract
    if contract.self_ref:  # e.g. a store whose parent DC is listed in the same file
        own = scan_raw(job.path, job.fmt).select(pl.col(contract.key[0]).cast(pl.String)).collect()
        own = own.to_series()
        job.resolvers = {k: r.with_known(own) for k, r in job.resolvers.items()}
    df, checks = _validate(job)
    df = mark_duplicate_keys(df, contract.key, checks)
    flags = [c.flag for c in checks]
    counts = df.select(pl.col(flags).sum(), pl.col("__bad").sum()).row(0, named=True)
    n_bad = int(counts.pop("__bad") or 0)
    by_field: dict[str, int] = {}
    for c in checks:
        if counts[c.flag]:
            by_field[c.field] = by_field.get(c.field, 0) + int(counts[c.flag])
    fields = list(contract.names) + job.keep
    entries = None
    if n_bad:
        bad = df.filter(pl.col("__bad")).select(ROW, *flags)
        raw_bad = (scan_raw(job.path, job.fmt).filter(pl.col(ROW).is_in(bad[ROW].head(job.limit)))
                   .select(ROW, *job.present).collect())
        entries = violations(bad, raw_bad, checks, job.file_name, job.limit)
        good = df.filter(~pl.col("__bad")).select(ROW, *fields)
    else:
        good = df.select(ROW, *fields)
    rows_total = n_bad + good.height
    if contract.kind == "lead_times":
        good = good.with_columns(pl.col("lead_time_days").fill_null(
            (pl.col("receipt_date") - pl.col("order_date")).dt.total_days().cast(pl.Float64)))
    return _Checked(good=good, entries=entries, n_bad=n_bad, rows_total=rows_total, by_field=by_field)


def _status(usable: int, n_bad: int) -> str:
    return "rejected" if usable == 0 else ("partial" if n_bad else "stored")


def _finish(job: _Job, c: _Checked, batch_id: str, status: str, n_new: int, n_upd: int,
            n_dup: int) -> IngestResult:
    msg = ""
    if c.entries is not None and c.entries.height >= job.limit:
        msg = f"only the first {job.limit:,d} quarantine entries were kept"
    return job.done(status=status, batch_id=batch_id, rows_total=c.rows_total, rows_stored=n_new,
                    rows_updated=n_upd, rows_duplicate=n_dup, rows_quarantined=c.n_bad,
                    ignored_columns=() if job.keep else job.extra, violations_by_field=c.by_field,
                    message=msg)


def _store_facts(job: _Job, c: _Checked) -> IngestResult:
    """Drop rows already stored, quarantine conflicting ones, write the rest, then record the batch."""
    contract, facts_dir, batch_id = job.contract, Path(job.settings.facts_dir), uuid.uuid4().hex
    job.step("comparing with stored rows")
    new, n_dup, conflicts = split_against_stored_facts(facts_dir, contract, job.tenant, c.good)
    if conflicts.height:
        key = ",".join(contract.key)
        c.by_field[key] = c.by_field.get(key, 0) + conflicts.height
        conflict_entries = conflicts.join(c.good, on=ROW).select(
            pl.col(ROW).cast(pl.Int64).alias("row_number"), pl.lit(key).alias("field"),
            pl.concat_str([pl.col(k).cast(pl.String) for k in contract.key], separator="|").alias("value"),
            pl.lit("a key not already stored with other values (stored facts are not overwritten)")
            .alias("expected"), pl.lit(job.file_name).alias("file_name"))
        c.entries = conflict_entries if c.entries is None else pl.concat([c.entries, conflict_entries])
        c.n_bad += conflicts.height
    status = _status(new.height + n_dup, c.n_bad)
    counts = {"rows_total": c.rows_total, "rows_stored": new.height, "rows_duplicate": n_dup,
              "rows_quarantined": c.n_bad}
    job.step("writing")
    written = []
    if status != "rejected":
        written = write_partitions(facts_dir, contract.table, job.tenant, new.drop(ROW),
                                   contract.period_field, batch_id)
    job.step("recording")
    try:
        with session_scope(job.engine) as s:
            _record(s.connection(), batch_id=batch_id, tenant=job.tenant, contract=contract,
                    file_name=job.file_name, digest=job.digest, status=status, counts=counts, message=None,
                    entries=c.entries)
    except BaseException:
        if written:  # the batch is not recorded, so its files must not stay either
            delete_batch(facts_dir, contract.table, job.tenant, batch_id)
        raise
    return _finish(job, c, batch_id, status, new.height, 0, n_dup)


def _store_sql(job: _Job, c: _Checked) -> IngestResult:
    """Insert new rows, update changed ones and record the batch, all in one transaction."""
    batch_id = uuid.uuid4().hex
    job.step("comparing with stored rows")
    n_new = n_upd = n_dup = 0
    with session_scope(job.engine) as s:
        conn = s.connection()
        job.step("writing")
        usable_rows = c.good.drop(ROW)
        if usable_rows.height:
            n_new, n_upd, n_dup = upsert_sql(conn, job.contract, job.tenant, usable_rows, job.keep)
        status = _status(n_new + n_upd + n_dup, c.n_bad)
        job.step("recording")
        counts = {"rows_total": c.rows_total, "rows_stored": n_new + n_upd, "rows_duplicate": n_dup,
                  "rows_quarantined": c.n_bad}
        _record(conn, batch_id=batch_id, tenant=job.tenant, contract=job.contract, file_name=job.file_name,
                digest=job.digest, status=status, counts=counts, message=None, entries=c.entries)
    return _finish(job, c, batch_id, status, n_new, n_upd, n_dup)


def list_quarantine(engine: Engine, tenant: str, *, batch_id: str | None = None, kind: str | None = None,
                    limit: int = 100) -> list[dict]:
    """Quarantine entries of ``tenant``, newest batch first, then by row (dicts of ``quarantine_rows``)."""
    q = QuarantineRow.__table__
    stmt = select(q).where(q.c.tenant_id == tenant)
    if batch_id:
        stmt = stmt.where(q.c.batch_id == batch_id)
    if kind:
        stmt = stmt.where(q.c.kind == kind)
    stmt = stmt.order_by(q.c.created_at.desc(), q.c.batch_id, q.c.row_number, q.c.field).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def list_batches(engine: Engine, tenant: str, limit: int = 50) -> list[dict]:
    """Ingest batches of ``tenant``, newest first."""
    b = IngestBatch.__table__
    stmt = select(b).where(b.c.tenant_id == tenant).order_by(b.c.created_at.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
