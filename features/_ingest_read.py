"""Opening an ingest file: format, header, content hash and the lazy frame of raw values."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

__all__ = ["ROW", "file_format", "read_header", "content_hash", "scan_raw"]

#: Name of the 1-based data-row number column added to every frame.
ROW = "__row"


def file_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the file name (``.csv``, ``.csv.gz``, ``.txt``, ``.parquet``, ``.pq``)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".txt", ".csv.gz")):
        return "csv"
    raise ValueError(f"{path}: unknown file type; expected .csv or .parquet")


def content_hash(path: Path, chunk: int = 8 << 20) -> str:
    """SHA-256 of the file's bytes (hex): the identity of a batch for idempotent re-sends."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_header(path: Path, fmt: str) -> list[str]:
    """Column names of the file, in order."""
    if fmt == "parquet":
        return list(pl.read_parquet_schema(path))
    return pl.scan_csv(path, infer_schema=False, n_rows=0).collect_schema().names()


def scan_raw(path: Path, fmt: str, typed: dict[str, pl.DataType] | None = None) -> pl.LazyFrame:
    """Lazy frame of the file's raw values with a 1-based row number ``__row``.

    CSV columns are read as text (a malformed number must reach validation, not stop the read), except those
    in ``typed``, which the CSV reader parses directly and leaves null where a value does not parse (the
    caller re-reads those rows as text). Parquet columns keep their stored types.
    """
    if fmt == "parquet":
        lf = pl.scan_parquet(path)
    else:
        lf = pl.scan_csv(path, infer_schema=False, schema_overrides=typed or None, ignore_errors=bool(typed),
                         empty_string_is_null=True, truncate_ragged_lines=False)
    return lf.with_row_index(ROW, offset=1)
