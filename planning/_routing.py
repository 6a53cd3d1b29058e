"""Declarative routing rules (``configs/routing.yaml``): which recommendations and exceptions go to a planner.

A rule file is a list of rules tried in order; the first whose ``applies_to`` and every ``when`` condition
match routes the item to its ``queue`` and ``role`` with its ``reason``; an item no rule matches gets the
``default`` (normally ``auto_approve``). Example::

    version: 1
    default: {action: auto_approve}
    rules:
      - name: high_cost_buy
        applies_to: [purchase]
        when: {order_value: {gt: 25000}}
        route: {queue: senior-buyers, role: approver}
        reason: "order value {order_value} over 25,000"

Conditions: ``field: {op: value}`` with ``op`` in ``eq ne gt ge lt le in not_in``; every condition of a rule
must hold. ``reason`` and the route's ``queue`` may name fields in braces: ``queue: "buyers-{owner_team}"``
sends each item to its planning unit's owner team's queue (an item without an owner goes to
``buyers-unassigned``). Rules compile to Polars expressions, so a million items are
routed in one pass. A file that does not parse, names an unknown field, operator, key or item kind, or gives a
value of the wrong type is refused with :class:`RuleError` naming the file and line.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from planning._exception_schema import EXCEPTION_TYPES

__all__ = [
    "ITEM_KINDS",
    "ROUTABLE_FIELDS",
    "Rule",
    "RuleError",
    "RuleSet",
    "apply_rules",
    "load_rules",
    "parse_rules",
]

#: Item kinds a rule may apply to: recommendation kinds and exception types.
ITEM_KINDS = ("purchase", "transfer", "allocation", *EXCEPTION_TYPES)

#: Fields a rule may test, and their type ("number", "string", "bool").
ROUTABLE_FIELDS = {
    "kind": "string",
    "sku_id": "string",
    "location_id": "string",
    "supplier_id": "string",
    "order_qty": "number",
    "order_value": "number",
    "unit_cost": "number",
    "stockout_probability": "number",
    "fill_rate": "number",
    "fill_target": "number",
    "customer_committed": "number",
    "constrained": "bool",
    "bound_by": "string",
    "days_of_cover": "number",
    "severity": "string",
    "value": "number",
    "threshold": "number",
    "customer_impacting": "bool",
    "forecast_source": "string",
    "saving": "number",
    "owner_team": "string",
    "policy_kind": "string",
}
#: What a field named in a queue template becomes when the item has no value for it.
UNASSIGNED = "unassigned"
_OPS = ("eq", "ne", "gt", "ge", "lt", "le", "in", "not_in")
_RULE_KEYS = {"name", "applies_to", "when", "route", "reason", "action"}
_TOP_KEYS = {"version", "default", "rules"}
_ACTIONS = ("route", "auto_approve")
_ROLES = ("planner", "approver", "admin")  # the workflow's roles that may decide


class RuleError(ValueError):
    """A routing rule file is malformed; the message names the file, the line and what was expected."""


@dataclasses.dataclass(frozen=True)
class Condition:
    """``field op value``."""

    field: str
    op: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Rule:
    """One routing rule.

    Attributes:
        name: unique rule name (carried by every item it routes).
        applies_to: item kinds (empty: every kind).
        conditions: all must hold.
        action: ``route`` or ``auto_approve``.
        queue: planner queue (``route`` only).
        role: role that may decide (``route`` only).
        reason: reason template; ``{field}`` is replaced by the item's value.
        line: line of the rule in its file.
    """

    name: str
    applies_to: tuple[str, ...]
    conditions: tuple[Condition, ...]
    action: str
    queue: str | None
    role: str | None
    reason: str
    line: int


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """Ordered rules and the default for unmatched items."""

    rules: tuple[Rule, ...]
    default: Rule
    source: str


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _err(source: str, node: yaml.Node, msg: str) -> RuleError:
    return RuleError(f"{source}, line {_line(node)}: {msg}")


def _scalar(source: str, node: yaml.Node, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise _err(source, node, f"{what}: expected a single value")
    return yaml.safe_load(yaml.serialize(node))


def _mapping(
    source: str, node: yaml.Node, what: str, allowed: set[str] | None = None
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _err(source, node, f"{what}: expected a mapping of key: value")
    out = {}
    for k, v in node.value:
        key = _scalar(source, k, f"{what} key")
        if not isinstance(key, str):
            raise _err(source, k, f"{what}: key {key!r} must be a string")
        if allowed is not None and key not in allowed:
            raise _err(source, k, f"{what}: unknown key {key!r}; expected one of {sorted(allowed)}")
        if key in out:
            raise _err(source, k, f"{what}: duplicate key {key!r}")
        out[key] = (k, v)
    return out


def _check_value(source: str, node: yaml.Node, field: str, op: str, value: Any) -> Any:
    kind = ROUTABLE_FIELDS[field]
    values = value if op in ("in", "not_in") else [value]
    if op in ("in", "not_in") and not isinstance(value, list):
        raise _err(source, node, f"{field} {op}: expected a list of values")
    for v in values:
        ok = {
            "number": isinstance(v, int | float) and not isinstance(v, bool),
            "string": isinstance(v, str),
            "bool": isinstance(v, bool),
        }[kind]
        if not ok:
            raise _err(source, node, f"{field} {op}: value {v!r} is not a {kind}")
    if kind != "number" and op in ("gt", "ge", "lt", "le"):
        raise _err(source, node, f"{field}: operator {op!r} needs a number field; {field} is a {kind}")
    return value


def _reason_fields(source: str, node: yaml.Node, reason: str) -> None:
    for name in re.findall(r"{([^{}]*)}", reason):
        if name not in ROUTABLE_FIELDS:
            raise _err(
                source,
                node,
                f"reason names unknown field {{{name}}}; known fields: {', '.join(sorted(ROUTABLE_FIELDS))}",
            )


def _rule(source: str, node: yaml.Node, index: int, default: bool = False) -> Rule:
    what = "default" if default else f"rule {index + 1}"
    m = _mapping(source, node, what, _RULE_KEYS)
    name = "default" if default else _scalar(source, m["name"][1], f"{what} name") if "name" in m else None
    if not name or not isinstance(name, str):
        raise _err(source, node, f"{what}: needs a 'name' (a string)")
    action = (
        _scalar(source, m["action"][1], f"{name} action")
        if "action" in m
        else ("route" if "route" in m else "auto_approve")
    )
    if action not in _ACTIONS:
        raise _err(source, m["action"][1], f"{name}: action {action!r}; expected one of {list(_ACTIONS)}")
    applies: tuple[str, ...] = ()
    if "applies_to" in m:
        node_a = m["applies_to"][1]
        raw = yaml.safe_load(yaml.serialize(node_a))
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list):
            raise _err(source, node_a, f"{name} applies_to: expected a list of item kinds")
        for k in raw:
            if k not in ITEM_KINDS:
                raise _err(
                    source,
                    node_a,
                    f"{name} applies_to: unknown item kind {k!r}; expected one of {', '.join(ITEM_KINDS)}",
                )
        applies = tuple(raw)
    conditions = []
    if "when" in m:
        for field, (fk, fv) in _mapping(source, m["when"][1], f"{name} when").items():
            if field not in ROUTABLE_FIELDS:
                raise _err(
                    source,
                    fk,
                    f"{name}: unknown field {field!r}; known fields: {', '.join(sorted(ROUTABLE_FIELDS))}",
                )
            for op, (ok, ov) in _mapping(source, fv, f"{name} {field}").items():
                if op not in _OPS:
                    raise _err(
                        source,
                        ok,
                        f"{name} {field}: unknown operator {op!r}; expected one of {', '.join(_OPS)}",
                    )
                value = yaml.safe_load(yaml.serialize(ov))
                conditions.append(Condition(field, op, _check_value(source, ov, field, op, value)))
    queue = role = None
    if action == "route":
        if "route" not in m:
            raise _err(source, node, f"{name}: action 'route' needs route: {{queue: ..., role: ...}}")
        r = _mapping(source, m["route"][1], f"{name} route", {"queue", "role"})
        if "queue" not in r or "role" not in r:
            raise _err(source, m["route"][1], f"{name} route: needs both 'queue' and 'role'")
        queue = str(_scalar(source, r["queue"][1], "queue"))
        _reason_fields(source, r["queue"][1], queue)
        role = str(_scalar(source, r["role"][1], "role"))
        if role not in _ROLES:
            raise _err(source, r["role"][1], f"{name} route: role {role!r}; expected one of {list(_ROLES)}")
    reason = (
        str(_scalar(source, m["reason"][1], f"{name} reason"))
        if "reason" in m
        else ("no rule matched: auto-approved by policy" if default else name)
    )
    if "reason" in m:
        _reason_fields(source, m["reason"][1], reason)
    return Rule(
        name=name,
        applies_to=applies,
        conditions=tuple(conditions),
        action=action,
        queue=queue,
        role=role,
        reason=reason,
        line=_line(node),
    )


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Parse and validate a routing rule document.

    Raises:
        RuleError: the YAML does not parse or a rule is invalid; the message names ``source`` and the line.
    """
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else "?"
        where = ""
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            where = f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise RuleError(f"{source}, line {line}: not valid YAML: {exc.problem or exc}{where}") from None
    if root is None:
        raise RuleError(f"{source}, line 1: empty rule file; expected 'rules:' with a list of rules")
    top = _mapping(source, root, "rule file", _TOP_KEYS)
    if "version" in top and _scalar(source, top["version"][1], "version") != 1:
        raise _err(source, top["version"][1], "version: only version 1 is understood")
    if "rules" not in top or not isinstance(top["rules"][1], yaml.SequenceNode):
        raise _err(source, root, "rule file: expected 'rules:' with a list of rules")
    rules = tuple(_rule(source, n, i) for i, n in enumerate(top["rules"][1].value))
    seen: dict[str, int] = {}
    for r in rules:
        if r.name in seen:
            raise RuleError(
                f"{source}, line {r.line}: duplicate rule name {r.name!r} (first on line {seen[r.name]})"
            )
        seen[r.name] = r.line
    if "default" in top:
        default = _rule(source, top["default"][1], -1, default=True)
        if default.conditions or default.applies_to:
            raise _err(source, top["default"][1], "default: takes no 'when' or 'applies_to'")
    else:
        default = Rule(
            "default",
            (),
            (),
            "auto_approve",
            None,
            None,
            "no rule matched: auto-approved by policy",
            _line(root),
        )
    return RuleSet(rules=rules, default=default, source=source)


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a routing rule file (see :func:`parse_rules`)."""
    p = Path(path)
    if not p.exists():
        raise RuleError(f"{p}: routing rule file not found")
    return parse_rules(p.read_text(), source=str(p))


def _condition_expr(c: Condition, schema: pl.Schema) -> pl.Expr:
    if c.field not in schema:
        return pl.lit(False)
    col = pl.col(c.field)
    ops = {
        "eq": lambda: col == c.value,
        "ne": lambda: col != c.value,
        "gt": lambda: col > c.value,
        "ge": lambda: col >= c.value,
        "lt": lambda: col < c.value,
        "le": lambda: col <= c.value,
        "in": lambda: col.is_in(c.value),
        "not_in": lambda: ~col.is_in(c.value),
    }
    return ops[c.op]().fill_null(False)


def _reason_expr(template: str, schema: pl.Schema, missing: str = "?") -> pl.Expr:
    names = re.findall(r"{([^{}]*)}", template)
    if not names:
        return pl.lit(template)
    fmt = re.sub(r"{[^{}]*}", "{}", template)
    args = [pl.col(n).cast(pl.String).fill_null(missing) if n in schema else pl.lit(missing) for n in names]
    return pl.format(fmt, *args)


def apply_rules(items: pl.DataFrame, rules: RuleSet) -> pl.DataFrame:
    """Apply the first matching rule to each item.

    Args:
        items: one row per recommendation or exception, with a ``kind`` column (see :data:`ITEM_KINDS`) and
            any of :data:`ROUTABLE_FIELDS`; a condition on a field the frame lacks does not match.
        rules: the parsed rule set.

    Returns:
        ``items`` with ``action`` (route / auto_approve), ``route_queue``, ``route_role``, ``rule`` and
        ``reason``.
    """
    if "kind" not in items.columns:
        raise ValueError("items to route need a 'kind' column")
    schema = items.schema
    all_rules = [*rules.rules, rules.default]
    idx = pl.lit(len(all_rules) - 1)
    for i in range(len(rules.rules) - 1, -1, -1):  # built inside out so that the first rule wins
        r = rules.rules[i]
        cond = pl.col("kind").is_in(list(r.applies_to)) if r.applies_to else pl.lit(True)
        for c in r.conditions:
            cond = cond & _condition_expr(c, schema)
        idx = pl.when(cond).then(pl.lit(i)).otherwise(idx)
    out = items.with_columns(idx.cast(pl.Int32).alias("_rule_idx"))
    reason = pl.lit(None, dtype=pl.String)
    queue = pl.lit(None, dtype=pl.String)
    for i in range(len(all_rules) - 1, -1, -1):
        hit = pl.col("_rule_idx") == i
        reason = pl.when(hit).then(_reason_expr(all_rules[i].reason, schema)).otherwise(reason)
        if all_rules[i].queue is not None:
            queue = pl.when(hit).then(_reason_expr(all_rules[i].queue, schema, UNASSIGNED)).otherwise(queue)
    lut = lambda attr: pl.col("_rule_idx").replace_strict(  # noqa: E731
        list(range(len(all_rules))), [getattr(r, attr) for r in all_rules], return_dtype=pl.String
    )
    return out.with_columns(
        lut("action").alias("action"),
        queue.alias("route_queue"),
        lut("role").alias("route_role"),
        lut("name").alias("rule"),
        reason.alias("reason"),
    ).drop("_rule_idx")
