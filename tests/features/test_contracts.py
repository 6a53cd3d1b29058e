"""Contracts: the rendered documentation is current; expected forms read as intended."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.contracts import CONTRACTS, KINDS, get_contract, render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def test_docs_match_the_contracts():
    assert DOC.read_text() == render_markdown(), "regenerate docs/contracts.md with render_markdown()"


def test_issue_kinds_are_all_there():
    assert {"sales", "inventory", "skus", "locations", "suppliers", "supplier_terms", "lead_times",
            "promotions", "purchase_orders"} <= set(KINDS)


def test_keys_and_rules_name_real_fields():
    for c in CONTRACTS.values():
        assert set(c.key) <= set(c.names), c.kind
        assert all(c.field(k).required for k in c.key), c.kind
        for r in c.rules:
            assert r.field in c.names
            assert set(r.check().meta.root_names()) <= set(c.names)


def test_expected_forms():
    sales = get_contract("sales")
    assert sales.field("qty").expected() == "number >= 0, not empty"
    assert sales.field("price").expected() == "number > 0"
    assert sales.field("sku_id").expected().startswith("text of at most 64 characters naming a known sku")
    assert get_contract("locations").field("kind").expected() == "one of store, dc, warehouse, not empty"
    with pytest.raises(ValueError, match="expected one of"):
        get_contract("weather")
