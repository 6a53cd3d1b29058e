"""Vectorised contract checks: typed columns and one violation flag per check, as polars expressions.

No row loops: every check is an expression over whole columns, evaluated in one lazy query, so 10 million rows
are validated at the speed of a columnar scan. The few violating rows are then turned into quarantine entries.
"""

from __future__ import annotations

import dataclasses

import polars as pl

from features._ingest_read import ROW
from features.contracts import Contract, Field

__all__ = ["Check", "build_plan", "mark_duplicate_keys", "violations"]

_TYPES = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "date": pl.Date, "bool": pl.Boolean}
_TRUE = ["true", "True", "TRUE", "t", "T", "1", "yes", "Yes", "YES", "y", "Y"]
_FALSE = ["false", "False", "FALSE", "f", "F", "0", "no", "No", "NO", "n", "N"]


@dataclasses.dataclass(frozen=True)
class Check:
    """One violation flag column and how to report it.

    Attributes:
        flag: name of the boolean column (true = violated).
        field: field reported in the quarantine.
        expected: expected form in words.
        value_from: raw columns whose values are reported (joined with ``|`` when several).
    """

    flag: str
    field: str
    expected: str
    value_from: tuple[str, ...]


def _parse(f: Field, raw: pl.DataType) -> pl.Expr:
    """Typed value of field ``f`` from its raw column (null where it does not parse)."""
    c = pl.col(f.name)
    target = _TYPES[f.dtype]
    if raw == target:
        return c
    text = raw in (pl.String, pl.Categorical) or isinstance(raw, pl.Enum | pl.Categorical)
    if f.dtype == "str":
        return c.cast(pl.String)
    if f.dtype in ("int", "float"):
        x = (c.cast(pl.String) if text else c).cast(pl.Float64, strict=False)
        x = pl.when(x.is_finite()).then(x)
        if f.dtype == "int":
            return pl.when(x == x.round(0)).then(x).cast(pl.Int64, strict=False)
        return x
    if f.dtype == "date":
        if text:
            return c.cast(pl.String).str.to_date("%Y-%m-%d", strict=False)
        return c.cast(pl.Date, strict=False)
    # bool
    if text:
        s = c.cast(pl.String)
        return pl.when(s.is_in(_TRUE)).then(True).when(s.is_in(_FALSE)).then(False).otherwise(None)
    return pl.when(c == 1).then(True).when(c == 0).then(False).otherwise(None)


def _in_range(f: Field, t: pl.Expr) -> pl.Expr | None:
    ok: list[pl.Expr] = []
    if f.ge is not None:
        ok.append(t >= f.ge)
    if f.gt is not None:
        ok.append(t > f.gt)
    if f.le is not None:
        ok.append(t <= f.le)
    if f.lt is not None:
        ok.append(t < f.lt)
    if f.one_of:
        ok.append(t.is_in(list(f.one_of)))
    if f.max_length:
        ok.append(t.str.len_chars() <= f.max_length)
    if f.dtype == "str":
        ok.append(t.str.len_chars() > 0)
    if not ok:
        return None
    return pl.all_horizontal(ok)


def build_plan(raw: pl.LazyFrame, contract: Contract, present: list[str], resolvers: dict[str, object],
               keep: list[str] | None = None) -> tuple[pl.LazyFrame, list[Check]]:
    """The lazy query producing typed fields plus violation flags, and the list of checks.

    Args:
        raw: raw values with ``__row`` (see ``features._ingest_read.scan_raw``).
        contract: the KIND's contract.
        present: contract fields present in the file (required ones are all present by now).
        resolvers: field name -> ``features.identity.Resolver`` for every ``ref`` field present.
        keep: extra raw columns carried through as text (``skus`` attributes).

    Returns:
        (lazy frame with ``__row``, every contract field typed and a bool column per check except the key
        check done by :func:`mark_duplicate_keys` after collecting; checks).
    """
    schema = raw.collect_schema()
    checks: list[Check] = []
    typed: list[pl.Expr] = []
    flags: list[pl.Expr] = []
    for f in contract.fields:
        if f.name not in present:
            typed.append(pl.lit(f.default, dtype=_TYPES[f.dtype]).alias(f.name))
            continue
        t = _parse(f, schema[f.name])
        typed.append(t.alias(f.name))
        r = pl.col(f.name)
        bad = r.is_not_null() & t.is_null()
        if not f.nullable:
            bad = bad | r.is_null()
        rng = _in_range(f, t)
        if rng is not None:
            bad = bad | (t.is_not_null() & ~rng)
        flag = f"__bad_{f.name}"
        flags.append(bad.alias(flag))
        checks.append(Check(flag, f.name, f.expected(), (f.name,)))
    # Stage 1: typed values and type/range flags from the raw columns (raw columns are dropped here).
    lf = raw.select(pl.col(ROW), *typed, *flags, *[pl.col(k).cast(pl.String) for k in keep or ()])

    # Stage 2: identities. Resolved ids replace the file's codes; unresolved ones are flagged.
    resolved, unknown = [], []
    for name, resolver in resolvers.items():
        value, missing = resolver.expressions(name)
        flag = f"__unknown_{name}"
        resolved.append(value.alias(name))
        unknown.append(missing.alias(flag))
        checks.append(Check(flag, name, f"a known {resolver.entity} (internal id or alias)", (name,)))
    if resolved:
        lf = lf.with_columns(*unknown).with_columns(*resolved)

    # Stage 3: rules across fields (only where their fields are valid: invalid values are null already).
    rule_flags = []
    for rule in contract.rules:
        if not set(_rule_fields(rule)) <= set(contract.names):
            continue
        flag = f"__rule_{rule.name}"
        rule_flags.append((~rule.check()).fill_null(False).alias(flag))
        checks.append(Check(flag, rule.field, rule.expected, (rule.field,)))
    if rule_flags:
        lf = lf.with_columns(*rule_flags)

    # Stage 4 (after collecting, see mark_duplicate_keys): keys unique within the file.
    checks.append(Check("__dup_key", ",".join(contract.key),
                        f"a key ({', '.join(contract.key)}) unique in the file", contract.key))
    return lf, checks


def mark_duplicate_keys(df: pl.DataFrame, key: tuple[str, ...], checks: list[Check]) -> pl.DataFrame:
    """Add ``__dup_key`` (every row of a key that occurs more than once) and ``__bad`` (any check violated).

    Rows whose key has an invalid (null) part take no part. A 64-bit hash of the key decides first (the
    common case, no duplicate, costs one hash and a count of distinct values); exact comparison of the keys
    then runs only on the rows whose hash repeats, so a hash collision never flags a row.
    """
    valid = pl.all_horizontal(pl.col(k).is_not_null() for k in key)
    h = pl.when(valid).then(pl.struct(*key).hash())
    n_valid, n_distinct = df.select(valid.sum().alias("n"), h.drop_nulls().n_unique().alias("d")).row(0)
    if n_valid == n_distinct:
        dup = pl.lit(False).alias("__dup_key")
    else:
        hashes = df.select(pl.col(ROW), h.alias("__h"))
        cand = hashes.filter(pl.col("__h").is_duplicated())[ROW]
        sub = df.filter(pl.col(ROW).is_in(cand.implode())).select(ROW, *key)
        exact = sub.filter(pl.struct(*key).is_duplicated())[ROW]
        dup = pl.col(ROW).is_in(exact.implode()).alias("__dup_key")
    return df.with_columns(dup).with_columns(pl.any_horizontal(c.flag for c in checks).alias("__bad"))


def _rule_fields(rule) -> list[str]:
    return rule.check().meta.root_names()


def violations(bad_rows: pl.DataFrame, raw_values: pl.DataFrame, checks: list[Check], file_name: str,
               limit: int) -> pl.DataFrame:
    """Quarantine entries (row_number, field, value, expected, file_name) of flagged rows, at most ``limit``.

    Args:
        bad_rows: rows with ``__bad``: ``__row`` and the check flags.
        raw_values: ``__row`` and the raw columns (as text) of the same rows.
        checks: the checks of :func:`build_plan`.
        file_name: reported with every entry.
        limit: most entries returned.
    """
    parts = []
    raw = raw_values.with_columns(pl.exclude(ROW).cast(pl.String))
    for c in checks:
        if c.flag not in bad_rows.columns:
            continue
        rows = bad_rows.filter(pl.col(c.flag)).select(ROW)
        if rows.height == 0:
            continue
        cols = [k for k in c.value_from if k in raw.columns]
        if len(cols) == 1:
            value = pl.col(cols[0])  # an empty cell stays null (shown as empty), not ""
        elif cols:
            value = pl.concat_str([pl.col(k).fill_null("") for k in cols], separator="|")
        else:
            value = pl.lit(None, dtype=pl.String)
        parts.append(rows.join(raw, on=ROW, how="left").select(
            pl.col(ROW).alias("row_number"), pl.lit(c.field).alias("field"), value.alias("value"),
            pl.lit(c.expected).alias("expected")))
        if sum(p.height for p in parts) >= limit:
            break
    if not parts:
        return pl.DataFrame(schema={"row_number": pl.Int64, "field": pl.String, "value": pl.String,
                                    "expected": pl.String, "file_name": pl.String})
    out = pl.concat(parts).sort("row_number", "field").head(limit)
    return out.with_columns(pl.col("row_number").cast(pl.Int64), pl.lit(file_name).alias("file_name"))
