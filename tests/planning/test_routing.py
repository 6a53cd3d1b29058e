from pathlib import Path

import polars as pl
import pytest

from planning._routing import RuleError, apply_rules, load_rules, parse_rules

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "routing.yaml"

RULES = """\
version: 1
default:
  action: auto_approve
rules:
  - name: big_buy
    applies_to: [purchase]
    when:
      order_value: {gt: 1000}
    route: {queue: senior, role: approver}
    reason: "value {order_value} over 1000 from {supplier_id}"
  - name: any_big
    when:
      order_value: {ge: 500}
      constrained: {ne: true}
    route: {queue: buyers, role: planner}
  - name: short
    applies_to: [allocation]
    when:
      constrained: {eq: true}
    route: {queue: supply, role: planner}
"""


def test_first_matching_rule_wins_and_default_auto_approves():
    items = pl.DataFrame(
        {
            "kind": ["purchase", "purchase", "transfer", "allocation", "allocation"],
            "order_value": [2000.0, 600.0, 700.0, 10.0, 900.0],
            "supplier_id": ["S1", "S1", None, "S2", "S2"],
            "constrained": [False, False, False, True, True],
        }
    )
    out = apply_rules(items, parse_rules(RULES))
    assert out["rule"].to_list() == ["big_buy", "any_big", "any_big", "short", "short"]
    assert out["action"].to_list() == ["route"] * 5
    assert out["route_queue"].to_list() == ["senior", "buyers", "buyers", "supply", "supply"]
    assert out["reason"][0] == "value 2000.0 over 1000 from S1"
    small = apply_rules(
        pl.DataFrame({"kind": ["purchase"], "order_value": [1.0], "constrained": [False]}), parse_rules(RULES)
    )
    assert small["action"][0] == "auto_approve" and small["rule"][0] == "default"
    assert small["route_queue"][0] is None and small["reason"][0]


def test_condition_on_absent_field_does_not_match():
    out = apply_rules(pl.DataFrame({"kind": ["purchase"]}), parse_rules(RULES))
    assert out["rule"][0] == "default"


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("rules:\n  - name: a\n    when: {order_value: {gt: 1]}\n", 3, "not valid YAML"),
        ("rules:\n  - name: a\n    when: {order_value: {gt: 1}\n", 4, "flow mapping on line 3"),
        (
            "rules:\n  - name: a\n    when:\n      ordre_value: {gt: 1}\n"
            "    route: {queue: q, role: planner}\n",
            4,
            "unknown field 'ordre_value'",
        ),
        ("rules:\n  - name: a\n    when:\n      order_value: {bigger: 1}\n", 4, "unknown operator 'bigger'"),
        ("rules:\n  - name: a\n    when:\n      order_value: {gt: lots}\n", 4, "is not a number"),
        ("rules:\n  - name: a\n    applies_to: [purchase, spaceship]\n", 3, "unknown item kind 'spaceship'"),
        ("rules:\n  - name: a\n    route: {queue: q, role: boss}\n", 3, "role 'boss'"),
        ("rules:\n  - name: a\n    route: {queue: q}\n", 3, "needs both 'queue' and 'role'"),
        ("rules:\n  - name: a\n    colour: red\n", 3, "unknown key 'colour'"),
        ("rules:\n  - name: a\n    reason: 'see {nope}'\n", 3, "unknown field {nope}"),
        ("rules:\n  - name: a\n  - name: a\n", 3, "duplicate rule name 'a'"),
        ("version: 2\nrules: []\n", 1, "only version 1"),
        ("", 1, "empty rule file"),
    ],
)
def test_malformed_rule_files_refused_with_the_line(text, line, words):
    with pytest.raises(RuleError) as err:
        parse_rules(text, source="routing.yaml")
    msg = str(err.value)
    assert msg.startswith(f"routing.yaml, line {line}:"), msg
    assert words in msg


def test_shipped_config_parses_and_routes_each_kind(tmp_path):
    rules = load_rules(CONFIG)
    names = {r.name for r in rules.rules}
    assert {
        "high_cost_buy",
        "constrained_supply",
        "forecast_anomaly",
        "customer_impacting_stockout",
        "policy_exception",
    } <= names
    items = pl.DataFrame(
        {
            "kind": [
                "purchase",
                "purchase",
                "allocation",
                "forecast_anomaly",
                "stockout_risk",
                "identity",
                "transfer",
            ],
            "order_value": [30000.0, 10.0, 50.0, None, None, None, 5.0],
            "constrained": [False, False, True, None, None, None, None],
            "customer_impacting": [None, None, None, False, True, False, None],
            "severity": [None, None, None, "medium", "high", "high", None],
            "bound_by": ["none", "none", "supply", None, None, None, "transfer"],
            "value": [None, None, None, 50.0, 0.7, None, None],
            "threshold": [None, None, None, 20.0, 0.2, None, None],
            "sku_id": ["a"] * 7,
            "location_id": ["L"] * 7,
            "supplier_id": ["S"] * 7,
        }
    )
    out = apply_rules(items, rules)
    assert out["rule"].to_list() == [
        "high_cost_buy",
        "default",
        "constrained_supply",
        "forecast_anomaly",
        "customer_impacting_stockout",
        "policy_exception",
        "default",
    ]
    assert out.filter(pl.col("action") == "route")["reason"].null_count() == 0
    bad = tmp_path / "routing.yaml"
    bad.write_text(CONFIG.read_text().replace("order_value: {gt: 25000}", "order_valu: {gt: 25000}"))
    with pytest.raises(RuleError, match=rf"{bad}, line \d+: high_cost_buy: unknown field 'order_valu'"):
        load_rules(bad)
    with pytest.raises(RuleError, match="not found"):
        load_rules(tmp_path / "missing.yaml")
