"""The data commands through typer's CliRunner on the real ``replenish`` app and a real store."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from serving.cli import app

runner = CliRunner()


def _flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture
def synth_dir(tmp_path):
    out = tmp_path / "synth"
    r = runner.invoke(app, ["synth", "--series", "12", "--periods", "20", "--freq", "W", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "sales" in r.output and "240" in r.output
    return out


def test_ingest_exit_codes_and_quarantine_listing(synth_dir, tmp_path):
    for kind in ("channels", "locations", "skus"):
        r = runner.invoke(app, ["ingest", kind, str(synth_dir / f"{kind}.csv")])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", "sales", str(synth_dir / "sales.csv")])
    assert r.exit_code == 0 and "stored" in r.output
    r = runner.invoke(app, ["ingest", "sales", str(synth_dir / "sales.csv")])
    assert r.exit_code == 0 and "already ingested" in r.output

    bad = tmp_path / "bad.csv"
    bad.write_text("sku_id,location_id,channel_id,date,qty\nSKU_001,STORE_001,store,2031-01-01,4\n"
                   "SKU_001,STORE_001,store,2031-01-02,-4\nNOPE,STORE_001,store,2031-01-03,1\n")
    r = runner.invoke(app, ["ingest", "sales", str(bad), "--progress"])
    assert r.exit_code == 1, r.output
    assert "quarantined" in r.output and "qty: 1 row(s)" in r.output and "sku_id: 1 row(s)" in r.output

    r = runner.invoke(app, ["quarantine", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "NOPE" in r.output and "-4" in r.output and "bad.csv" in r.output and "number >= 0" in r.output

    worse = tmp_path / "worse.csv"
    worse.write_text("sku_id,location_id,channel_id,date,qty\nNOPE,STORE_001,store,2031-01-03,1\n")
    assert runner.invoke(app, ["ingest", "sales", str(worse)]).exit_code == 2
    missing = tmp_path / "missing.csv"
    missing.write_text("sku_id,location_id,date\nSKU_001,STORE_001,2031-01-03\n")
    r = runner.invoke(app, ["ingest", "sales", str(missing)])
    assert r.exit_code == 2 and "missing required column(s): channel_id, qty" in _flat(r.output)


def test_unknown_kind_and_missing_file_exit_2(tmp_path):
    assert runner.invoke(app, ["ingest", "weather", str(tmp_path)]).exit_code == 2
    r = runner.invoke(app, ["ingest", "sales", str(tmp_path / "nope.csv")])
    assert r.exit_code == 2 and "no such file" in _flat(r.output)


def test_empty_quarantine():
    r = runner.invoke(app, ["quarantine", "list"])
    assert r.exit_code == 0 and "quarantine is empty" in r.output


def test_alias_add_then_ingest_resolves(synth_dir, tmp_path):
    for kind in ("channels", "locations", "skus"):
        assert runner.invoke(app, ["ingest", kind, str(synth_dir / f"{kind}.csv")]).exit_code == 0
    r = runner.invoke(app, ["alias", "add", "sku", "EAN-77", "SKU_002", "--source", "pos"])
    assert r.exit_code == 0 and "added" in r.output
    assert "already known" in runner.invoke(app, ["alias", "add", "sku", "EAN-77", "SKU_002",
                                                  "--source", "pos"]).output
    r = runner.invoke(app, ["alias", "add", "sku", "EAN-78", "SKU_NOPE"])
    assert r.exit_code == 2 and "SKU_NOPE" in r.output
    assert runner.invoke(app, ["alias", "add", "planet", "X", "SKU_002"]).exit_code == 2
    f = tmp_path / "s.csv"
    f.write_text("sku_id,location_id,channel_id,date,qty\nEAN-77,STORE_001,store,2031-01-01,4\n")
    assert runner.invoke(app, ["ingest", "sales", str(f)]).exit_code == 0
