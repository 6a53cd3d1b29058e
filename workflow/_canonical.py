"""Canonical JSON and hashing shared by evidence and the audit chain."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["GENESIS", "canonical_json", "jsonable", "sha256_hex", "ts_text"]

GENESIS = "0" * 64


def ts_text(t: datetime) -> str:
    """UTC timestamp text with microseconds; naive values (SQLite returns them) are taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonable(obj: Any) -> Any:
    """Convert dates, datetimes, decimals, tuples and sets to plain JSON values (recursively).

    Raises:
        ValueError: a float is NaN or infinite (JSON has no such numbers; evidence must be exact).
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"non-finite number {obj!r} cannot be stored as JSON")
        return obj
    if isinstance(obj, datetime):
        return ts_text(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(jsonable(v) for v in obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return jsonable(obj.tolist())
    raise ValueError(f"value of type {type(obj).__name__} cannot be stored as JSON")


def canonical_json(obj: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace: equal content gives equal bytes."""
    return json.dumps(
        jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sha256_hex(*parts: bytes) -> str:
    """Hex SHA-256 of the concatenated ``parts``."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()
