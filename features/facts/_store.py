"""Parquet fact store: one dataset per fact KIND, partitioned by tenant and month.

Layout under ``settings.facts_dir`` (``$REPLENISH_HOME/facts`` by default)::

    <kind>/tenant=<tenant>/period=<YYYY-MM>/<batch_id>.parquet

A batch writes every partition file as ``.<batch_id>.parquet.tmp`` first and renames it into place only
when all of them are written (``os.replace`` is atomic), so a reader never sees half a file and an
interrupted batch leaves only ``.tmp`` files, which readers ignore (``delete_batch`` removes them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import polars as pl

__all__ = ["dataset_dir", "delete_batch", "kind_lock", "list_periods", "partition_files", "period_of",
           "scan_facts", "write_partitions"]


def dataset_dir(facts_dir: Path, kind: str, tenant: str) -> Path:
    """Folder holding the partitions of ``kind`` for ``tenant``."""
    return Path(facts_dir) / kind / f"tenant={tenant}"


def period_of(d: date) -> str:
    """Partition label ``YYYY-MM`` of a date."""
    return f"{d.year:04d}-{d.month:02d}"


def list_periods(facts_dir: Path, kind: str, tenant: str) -> list[str]:
    """Partition labels (``YYYY-MM``) present for ``kind`` and ``tenant``, sorted."""
    root = dataset_dir(facts_dir, kind, tenant)
    if not root.is_dir():
        return []
    return sorted(p.name.split("=", 1)[1] for p in root.glob("period=*") if p.is_dir())


def partition_files(facts_dir: Path, kind: str, tenant: str, start: date | None = None,
                    end: date | None = None) -> list[Path]:
    """Committed Parquet files of the partitions overlapping ``[start, end]`` (months pruned by name)."""
    lo = period_of(start) if start else None
    hi = period_of(end) if end else None
    root = dataset_dir(facts_dir, kind, tenant)
    files: list[Path] = []
    for period in list_periods(facts_dir, kind, tenant):
        if (lo and period < lo) or (hi and period > hi):
            continue
        files.extend(sorted((root / f"period={period}").glob("*.parquet")))
    return files


def scan_facts(facts_dir: Path, kind: str, tenant: str, period_field: str | None, *,
               start: date | None = None, end: date | None = None, columns: Sequence[str] | None = None,
               schema: dict[str, pl.DataType] | None = None) -> pl.LazyFrame:
    """Lazy scan of ``kind`` for ``tenant``; rows with ``start <= period_field <= end`` when bounds are given.

    An empty dataset gives an empty frame with ``schema`` (when known).
    """
    files = partition_files(facts_dir, kind, tenant, start, end)
    if not files:
        lf = pl.LazyFrame(schema=schema or {})
    else:
        lf = pl.scan_parquet(files, hive_partitioning=False)
    if period_field is not None and files:
        if start is not None:
            lf = lf.filter(pl.col(period_field) >= start)
        if end is not None:
            lf = lf.filter(pl.col(period_field) <= end)
    if columns is not None:
        lf = lf.select(list(columns))
    return lf


@contextlib.contextmanager
def kind_lock(facts_dir: Path, kind: str, tenant: str) -> Iterator[None]:
    """Exclusive lock of one tenant's dataset while a batch is checked and written (one writer at a time)."""
    root = dataset_dir(facts_dir, kind, tenant)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_partitions(facts_dir: Path, kind: str, tenant: str, frame: pl.DataFrame, period_field: str,
                     batch_id: str) -> list[Path]:
    """Write ``frame`` as one file per month of ``period_field``, all-or-nothing; return the final paths.

    Args:
        facts_dir: root of the fact store.
        kind: dataset name.
        tenant: owner of the rows.
        frame: rows to store (any schema; ``period_field`` must be a Date column).
        period_field: the Date column that decides the month.
        batch_id: names the files, so a batch can be found and removed again (:func:`delete_batch`).
    """
    root = dataset_dir(facts_dir, kind, tenant)
    if frame.height == 0:
        return []
    d = pl.col(period_field)
    lo, hi = frame.select(d.min().alias("lo"), d.max().alias("hi")).row(0)
    pending: list[tuple[Path, Path]] = []
    try:
        # One range filter per month: cheaper than a hash partition_by (measured 2x on 10M rows), and only one
        # month is copied at a time.
        for start, stop in _months(lo, hi):
            part = frame.filter((pl.col(period_field) >= start) & (pl.col(period_field) < stop))
            if part.height == 0:
                continue
            folder = root / f"period={period_of(start)}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{batch_id}.parquet.tmp"
            pending.append((tmp, folder / f"{batch_id}.parquet"))
            part.write_parquet(tmp, compression="snappy", statistics=True)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in pending:
        os.replace(tmp, final)
    return [final for _, final in pending]


def _months(lo: date, hi: date) -> Iterator[tuple[date, date]]:
    """[first day of month, first day of next month) for every month from ``lo`` to ``hi``."""
    y, m = lo.year, lo.month
    while (y, m) <= (hi.year, hi.month):
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        yield date(y, m, 1), date(ny, nm, 1)
        y, m = ny, nm


def delete_batch(facts_dir: Path, kind: str, tenant: str, batch_id: str) -> int:
    """Remove every file of ``batch_id`` (committed or temporary); return how many were removed."""
    root = dataset_dir(facts_dir, kind, tenant)
    n = 0
    for pattern in (f"period=*/{batch_id}.parquet", f"period=*/.{batch_id}.parquet.tmp"):
        for p in root.glob(pattern):
            p.unlink(missing_ok=True)
            n += 1
    return n
