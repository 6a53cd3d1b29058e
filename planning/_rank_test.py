"""A one-sided rank-sum (Wilcoxon-Mann-Whitney) test per group in Polars: the lead-time drift check's test."""

from __future__ import annotations

import polars as pl

__all__ = ["rank_sum_z"]


def rank_sum_z(ranked: pl.DataFrame, term: list[str]) -> pl.DataFrame:
    """Per term: the one-sided Mann-Whitney z of its ``_recent`` deliveries over its earlier ones.

    ``U`` counts the (recent, earlier) pairs where the recent delivery took longer (ties count half); its
    variance is ``n1 n2 / 12 ((N + 1) - sum(t^3 - t) / (N (N - 1)))`` over the tie groups ``t`` of all N
    deliveries; a continuity correction of 1/2. Terms with no earlier delivery or all deliveries tied: null.
    """
    x = pl.col("lead_time_days")
    rec = ranked.filter(pl.col("_recent")).select(*term, x.alias("_x"))
    bef = ranked.filter(~pl.col("_recent")).select(*term, x.alias("_y"))
    u = (
        rec.join(bef, on=term)
        .group_by(term)
        .agg(
            ((pl.col("_x") > pl.col("_y")).cast(pl.Float64) + 0.5 * (pl.col("_x") == pl.col("_y")))
            .sum()
            .alias("_u")
        )
    )
    ties = (
        ranked.group_by(*term, "lead_time_days")
        .agg(pl.len().cast(pl.Float64).alias("_t"))
        .group_by(term)
        .agg((pl.col("_t") ** 3 - pl.col("_t")).sum().alias("_ties"))
    )
    sizes = ranked.group_by(term).agg(
        pl.col("_recent").sum().cast(pl.Float64).alias("_n1"),
        (~pl.col("_recent")).sum().cast(pl.Float64).alias("_n2"),
    )
    big_n = pl.col("_n1") + pl.col("_n2")
    var = pl.col("_n1") * pl.col("_n2") / 12.0 * ((big_n + 1.0) - pl.col("_ties") / (big_n * (big_n - 1.0)))
    return (
        sizes.join(u, on=term)
        .join(ties, on=term)
        .with_columns(
            pl.when(var > 0)
            .then((pl.col("_u") - pl.col("_n1") * pl.col("_n2") / 2.0 - 0.5) / var.sqrt())
            .alias("_z")
        )
        .select(*term, "_z")
    )
