"""Written contracts of the ingest KINDs: columns, types, ranges, keys, references and cross-field rules.

A :class:`Contract` says what a file of one KIND must contain; :mod:`features.ingest` checks every row
against it with vectorised polars expressions and quarantines what breaks it. ``docs/contracts.md`` is
rendered from these objects by :func:`render_markdown` (a test keeps the two equal).

Types as read from CSV (Parquet columns are cast the same way):

* ``str``: text, surrounding blanks are not trimmed; an empty cell is missing.
* ``int``: whole number (``12``); ``float``: decimal number (``12.5``, ``1e3``).
* ``date``: ISO ``YYYY-MM-DD``.
* ``bool``: ``true``/``false``/``1``/``0`` (any case).

``ref`` fields name an identity (sku, location, channel, supplier): the value must be a known internal id
of the tenant or an external alias of one (``external_aliases``), else the row is quarantined; it is never
guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["CONTRACTS", "KINDS", "Contract", "Field", "Rule", "get_contract", "render_markdown"]

DType = Literal["str", "int", "float", "date", "bool"]


@dataclasses.dataclass(frozen=True)
class Field:
    """One column of a contract.

    Attributes:
        name: column name in the file.
        dtype: ``str``, ``int``, ``float``, ``date`` or ``bool``.
        required: the column must be present in the file (a file without it is refused whole).
        nullable: an empty value is allowed (else the row is quarantined).
        default: value used when an optional column is absent from the file.
        ge, gt, le, lt: numeric bounds.
        one_of: allowed values of a ``str`` field.
        max_length: longest allowed ``str`` value.
        ref: identity the value refers to (``sku``, ``location``, ``channel``, ``supplier``).
        doc: what the column means.
    """

    name: str
    dtype: DType
    required: bool = True
    nullable: bool = False
    default: Any = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    one_of: tuple[str, ...] | None = None
    max_length: int | None = None
    ref: str | None = None
    doc: str = ""

    def expected(self) -> str:
        """The expected form in words, as shown in the quarantine (``number >= 0``, ``date YYYY-MM-DD``)."""
        base = {"str": "text", "int": "whole number", "float": "number", "date": "date YYYY-MM-DD",
                "bool": "true/false"}[self.dtype]
        parts = [base]
        for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
            if bound is not None:
                parts.append(f"{op} {_num(bound)}")
        if self.one_of:
            parts = [f"one of {', '.join(self.one_of)}"]
        if self.max_length and not self.one_of:
            parts.append(f"of at most {self.max_length} characters")
        if self.ref:
            parts.append(f"naming a known {self.ref} (internal id or alias)")
        text = " ".join(parts)
        return text if self.nullable else f"{text}, not empty"


@dataclasses.dataclass(frozen=True)
class Rule:
    """A rule across fields, checked after types and ranges.

    Attributes:
        name: short name.
        field: the field reported in the quarantine.
        check: builds a polars expression that is true where a row obeys the rule (nulls count as obeying).
        expected: the rule in words.
    """

    name: str
    field: str
    check: Callable[[], Any]
    expected: str


@dataclasses.dataclass(frozen=True)
class Contract:
    """What a file of one KIND must contain, and where its rows go.

    Attributes:
        kind: the KIND name (``replenish ingest KIND FILE``).
        fields: the columns; columns not listed are ignored (reported), except for ``skus`` where they are
            kept as ``attributes``.
        key: columns unique within a file and identifying a stored row.
        store: ``facts`` (Parquet fact store) or ``sql`` (state store table ``table``).
        table: fact dataset name or SQL table name.
        period_field: for facts, the date field that decides the monthly partition.
        rules: cross-field rules.
        self_ref: for ``locations``: ``parent_id`` may name a location of the same file.
        doc: what a row is.
    """

    kind: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    store: Literal["facts", "sql"]
    table: str
    period_field: str | None = None
    rules: tuple[Rule, ...] = ()
    self_ref: bool = False
    doc: str = ""

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.kind}: no field {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """All field names, in order."""
        return tuple(f.name for f in self.fields)

    @property
    def required(self) -> tuple[str, ...]:
        """Columns a file must have."""
        return tuple(f.name for f in self.fields if f.required)

    @property
    def values(self) -> tuple[str, ...]:
        """Non-key fields (compared when a key is already stored)."""
        return tuple(f.name for f in self.fields if f.name not in self.key)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _id(name: str, ref: str | None = None, **kw) -> Field:
    return Field(name, "str", max_length=64, ref=ref, **kw)


def _col(name: str):
    import polars as pl

    return pl.col(name)


def _receipt_after_order():
    return _col("receipt_date") >= _col("order_date")


def _eta_after_order():
    return _col("eta") >= _col("order_date")


def _purchase_has_supplier():
    return (_col("kind") != "purchase") | _col("supplier_id").is_not_null()


def _transfer_has_origin():
    return (_col("kind") != "transfer") | _col("from_location_id").is_not_null()


def _max_at_least_moq():
    return _col("max_order_qty").is_null() | (_col("max_order_qty") >= _col("moq"))


def _discount_matches_prices():
    price, regular = _col("price"), _col("regular_price")
    return regular.is_null() | (price <= regular * 1.000001)


_CONTRACTS = (
    Contract(
        "sales", store="facts", table="sales", period_field="date",
        key=("sku_id", "location_id", "channel_id", "date"),
        doc="Units sold (demand) of a SKU at a location through a channel in the period starting at `date`.",
        fields=(
            _id("sku_id", "sku", doc="SKU sold."),
            _id("location_id", "location", doc="Selling location (store)."),
            _id("channel_id", "channel", doc="Sales channel."),
            Field("date", "date", doc="Start of the period (day, week or month)."),
            Field("qty", "float", ge=0, doc="Units sold in the period."),
            Field("price", "float", required=False, nullable=True, gt=0, doc="Average selling price paid."),
            Field("promo", "bool", required=False, default=False, doc="Whether the SKU was on promotion."),
        ),
    ),
    Contract(
        "inventory", store="facts", table="inventory", period_field="date",
        key=("sku_id", "location_id", "date"),
        doc="Inventory snapshot of a SKU at a location at the end of `date`.",
        fields=(
            _id("sku_id", "sku"),
            _id("location_id", "location"),
            Field("date", "date", doc="Day of the snapshot."),
            Field("on_hand", "float", ge=0, doc="Units physically available."),
            Field("on_order", "float", required=False, default=0.0, ge=0,
                  doc="Units ordered, not yet received."),
            Field("backorders", "float", required=False, default=0.0, ge=0, doc="Units owed to customers."),
        ),
    ),
    Contract(
        "promotions", store="facts", table="promotions", period_field="date",
        key=("sku_id", "location_id", "channel_id", "date"),
        doc="Price and promotion of a SKU at a location and channel in the period starting at `date` "
            "(past or planned).",
        rules=(Rule("price_not_above_regular", "price", _discount_matches_prices,
                    "price <= regular_price"),),
        fields=(
            _id("sku_id", "sku"),
            _id("location_id", "location"),
            _id("channel_id", "channel"),
            Field("date", "date", doc="Start of the period."),
            Field("price", "float", gt=0, doc="Price charged."),
            Field("regular_price", "float", required=False, nullable=True, gt=0,
                  doc="Price without promotion."),
            Field("discount", "float", required=False, nullable=True, ge=0, le=1,
                  doc="Discount as a fraction of the regular price."),
            Field("promo", "bool", required=False, default=True, doc="Whether a promotion runs."),
        ),
    ),
    Contract(
        "lead_times", store="facts", table="lead_times", period_field="order_date",
        key=("supplier_id", "sku_id", "order_date"),
        doc="An observed delivery: when a SKU was ordered from a supplier and when it arrived.",
        rules=(Rule("receipt_after_order", "receipt_date", _receipt_after_order,
                    "receipt_date on or after order_date"),),
        fields=(
            _id("supplier_id", "supplier"),
            _id("sku_id", "sku"),
            Field("order_date", "date"),
            Field("receipt_date", "date"),
            Field("lead_time_days", "float", required=False, nullable=True, ge=0,
                  doc="Observed lead time; computed from the dates when absent."),
        ),
    ),
    Contract(
        "skus", store="sql", table="skus", key=("sku_id",),
        doc="A product and its hierarchy (category > family > brand). Extra columns are kept as attributes.",
        fields=(
            _id("sku_id"),
            Field("name", "str", required=False, nullable=True, max_length=200),
            Field("category", "str", required=False, nullable=True, max_length=64),
            Field("family", "str", required=False, nullable=True, max_length=64),
            Field("brand", "str", required=False, nullable=True, max_length=64),
            Field("uom", "str", required=False, nullable=True, max_length=16, doc="Unit of measure."),
        ),
    ),
    Contract(
        "locations", store="sql", table="locations", key=("location_id",), self_ref=True,
        doc="A store, DC or warehouse; `parent_id` is the next level of the location hierarchy.",
        fields=(
            _id("location_id"),
            Field("kind", "str", one_of=("store", "dc", "warehouse")),
            Field("name", "str", required=False, nullable=True, max_length=200),
            Field("region", "str", required=False, nullable=True, max_length=64),
            _id("parent_id", "location", required=False, nullable=True,
                doc="Parent location (in this file or already stored)."),
        ),
    ),
    Contract(
        "channels", store="sql", table="channels", key=("channel_id",),
        doc="A sales channel.",
        fields=(_id("channel_id"), Field("name", "str", required=False, nullable=True, max_length=200)),
    ),
    Contract(
        "suppliers", store="sql", table="suppliers", key=("supplier_id",),
        doc="A supplier.",
        fields=(
            _id("supplier_id"),
            Field("name", "str", required=False, nullable=True, max_length=200),
            Field("country", "str", required=False, nullable=True, max_length=2, doc="ISO 3166 alpha-2."),
        ),
    ),
    Contract(
        "supplier_terms", store="sql", table="supplier_terms", key=("supplier_id", "sku_id"),
        doc="What a supplier offers for a SKU.",
        rules=(Rule("max_at_least_moq", "max_order_qty", _max_at_least_moq, "max_order_qty >= moq"),),
        fields=(
            _id("supplier_id", "supplier"),
            _id("sku_id", "sku"),
            Field("unit_cost", "float", ge=0),
            Field("moq", "int", required=False, default=1, ge=0, doc="Minimum order quantity."),
            Field("pack_size", "int", required=False, default=1, ge=1, doc="Orders are multiples of it."),
            Field("max_order_qty", "int", required=False, nullable=True, gt=0),
            Field("promised_lead_time_days", "int", ge=0),
        ),
    ),
    Contract(
        "planning_units", store="sql", table="planning_units", key=("sku_id", "location_id", "channel_id"),
        doc="A SKU x location x channel that is forecast and replenished, with its policy and owner.",
        fields=(
            _id("sku_id", "sku"),
            _id("location_id", "location"),
            _id("channel_id", "channel"),
            Field("policy_kind", "str", required=False, default="periodic_review",
                  one_of=("periodic_review", "continuous_review", "min_max", "manual")),
            Field("review_period_days", "int", required=False, default=7, ge=1),
            Field("service_target", "float", required=False, default=0.95, gt=0, lt=1,
                  doc="Target fill rate / cycle service level."),
            Field("horizon_periods", "int", required=False, nullable=True, ge=1,
                  doc="Forecast horizon in periods of the tenant's grid; empty: the grid's default."),
            Field("owner_team", "str", required=False, nullable=True, max_length=64),
        ),
    ),
    Contract(
        "customer_commitments", store="sql", table="customer_commitments", key=("commitment_id",),
        doc="A quantity promised to a customer for a SKU at a location (and channel) by a due date.",
        fields=(
            _id("commitment_id"),
            _id("customer_id"),
            _id("sku_id", "sku"),
            _id("location_id", "location"),
            _id("channel_id", "channel", required=False, nullable=True),
            Field("qty", "float", gt=0),
            Field("due_date", "date"),
            Field("priority", "int", required=False, default=0, ge=0, doc="Higher is served first."),
            Field("status", "str", required=False, default="open", one_of=("open", "fulfilled", "cancelled")),
        ),
    ),
    Contract(
        "purchase_orders", store="sql", table="purchase_orders", key=("po_id", "sku_id", "location_id"),
        doc="A line of an open purchase order (from a supplier) or transfer (from a location) with its ETA.",
        rules=(
            Rule("eta_after_order", "eta", _eta_after_order, "eta on or after order_date"),
            Rule("purchase_has_supplier", "supplier_id", _purchase_has_supplier,
                 "a supplier_id when kind is purchase"),
            Rule("transfer_has_origin", "from_location_id", _transfer_has_origin,
                 "a from_location_id when kind is transfer"),
        ),
        fields=(
            _id("po_id"),
            _id("sku_id", "sku"),
            _id("location_id", "location", doc="Destination."),
            Field("kind", "str", required=False, default="purchase", one_of=("purchase", "transfer")),
            _id("supplier_id", "supplier", required=False, nullable=True),
            _id("from_location_id", "location", required=False, nullable=True),
            Field("qty", "float", gt=0),
            Field("order_date", "date"),
            Field("eta", "date"),
            Field("status", "str", required=False, default="open", one_of=("open", "received", "cancelled")),
        ),
    ),
)

CONTRACTS: dict[str, Contract] = {c.kind: c for c in _CONTRACTS}
KINDS: tuple[str, ...] = tuple(CONTRACTS)


def get_contract(kind: str) -> Contract:
    """The contract of ``kind``; an unknown KIND raises ``ValueError`` naming the known ones."""
    try:
        return CONTRACTS[kind]
    except KeyError:
        raise ValueError(f"unknown KIND {kind!r}: expected one of {', '.join(KINDS)}") from None


def render_markdown() -> str:
    """``docs/contracts.md``: one section per KIND with its columns, key, rules and destination."""
    out = [
        "# Ingest contracts",
        "",
        "Rendered from `features/contracts.py` by `features.contracts.render_markdown()`; do not edit by",
        "hand.",
        "",
        "`replenish ingest KIND FILE` reads CSV (header row, comma separated, UTF-8) or Parquet. A file",
        "missing a required column is refused whole (exit code 2) with the missing names. Every row is",
        "checked against the contract; a row that breaks it goes to the quarantine with file, row number",
        "(1 = first data row), field, value and expected form (`replenish quarantine list`), the others are",
        "stored in one atomic batch. Keys must be unique within a file; a row whose key is already stored",
        "with the same values adds nothing (the same file sent twice adds nothing at all), a fact row whose",
        "key is stored with other values is quarantined, and a reference row (SQL) with other values",
        "updates the stored one. Exit codes: 0 all rows stored, 1 some rows quarantined, 2 nothing usable.",
        "An empty cell counts as missing: it breaks a column whose 'empty allowed' is no, even when the",
        "column has a default (defaults apply only to columns absent from the file).",
        "",
        "Types: `str` text; `int` whole number; `float` number; `date` ISO `YYYY-MM-DD`; `bool`",
        "true/false/1/0.",
        "References name a known identity of the tenant (its internal id or an external alias in",
        "`external_aliases`); an unknown one is quarantined, never guessed.",
        "",
    ]
    for c in _CONTRACTS:
        dest = (f"fact store: `{c.table}/tenant=<tenant>/period=<YYYY-MM of {c.period_field}>/`"
                if c.store == "facts" else f"state store table `{c.table}`")
        out += [f"## `{c.kind}`", "", c.doc, "", f"- destination: {dest}", f"- key: `{', '.join(c.key)}`"]
        for r in c.rules:
            out.append(f"- rule: {r.expected} (reported on `{r.field}`)")
        out += ["", "| column | type | required | empty allowed | default | expected form | meaning |",
                "|---|---|---|---|---|---|---|"]
        for f in c.fields:
            default = "" if f.default is None else f"`{f.default}`"
            out.append(f"| `{f.name}` | {f.dtype} | {'yes' if f.required else 'no'} | "
                       f"{'yes' if f.nullable else 'no'} | {default} | {f.expected()} | {f.doc} |")
        out.append("")
    return "\n".join(out)
