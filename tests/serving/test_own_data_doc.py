"""``docs/own-data.md`` followed literally: from an empty home to served forecasts and recommendations.

Convention of the doc (stated at its top too): a fenced ```` ```bash ```` block whose previous non-empty line
is ``<!-- run -->`` is run by this test; every other block is an illustration. The marked blocks are joined,
in order, into one bash script (``set -euo pipefail``), so a shell variable set in one block (``KEY``,
``SERVE_PID``) is seen by the next; between blocks the test adds one ``printf`` line of its own (a marker that
splits the output per block). Nothing in the blocks is substituted: the script inherits the test's
environment without any ``REPLENISH_*`` variable, plus exactly the variables of :data:`VARIABLES` and ``PATH``
with the virtualenv's ``bin`` (where ``replenish`` is) in front; it runs in a fresh empty folder with a fresh
empty ``REPLENISH_HOME``, once on monthly and once on daily ``replenish synth`` files. No block runs Python:
the checks after the script read the store.

The fast tests below cover the walkthrough's frictions that need no training: the master-data order (sales
before the SKUs are quarantined with a clear reason, and the same file sent again after the master data is
stored), a settings file refused by the data checks is not remembered, and the doc's own shape (every
variable a marked block uses is documented or set by an earlier block).

The frictions of issue 12's "tried as a new user" and where each is tested:

* holdout < horizon refused before training: ``tests/training/test_config.py`` (names both fields),
  ``tests/training/test_stage.py::test_holdout_shorter_than_the_horizon_is_refused_before_training``,
  ``tests/serving/cli/test_cli_train.py::test_train_remembers_the_config_and_refuses_bad_ones`` (CLI, exit 2),
  here: a horizon from the file's top level with a shorter holdout.
* a walkthrough for one's own data: ``docs/own-data.md``, run here (monthly and daily).
* master data before facts: documented (section 2), enforced by ingest (quarantine, a known sku), here.
* month-end dates train: ``tests/training/conftest.py`` (the monthly tenant has month-end dates) with
  ``tests/training/test_stage.py::test_grid_is_read_from_the_data_and_forecasts_carry_their_meta`` and
  ``tests/training/test_config.py::test_lag_columns_are_known_inputs_from_history``.
* no repeated ``--config``: here (the cycle uses the remembered hierarchy and method without flags) and
  ``test_cli_train.py::test_train_remembers_the_config_and_refuses_bad_ones``.
* ``models list`` without ``--name``: here, and ``test_cli_train.py::test_models_list_without_a_name_...``.
* ``forecasts export`` (CSV/Parquet, key columns, run, version): here, and ``test_cli_train.py``.
* a re-run replaces its facts: ``test_stage.py::test_rerun_with_the_same_run_id_replaces_the_rows``.
* lags and SKU/location attributes for any tenant: ``test_config.py::test_lag_columns_...`` (a synthetic
  tenant), ``tests/training/test_pipeline.py`` (category as a static categorical), ``test_windows.py``.
* short series named: ``tests/training/conftest.py`` (``ShortSeriesWarning`` naming the series) and
  ``test_stage.py::test_short_series_are_named_not_silently_dropped``.
* quiet output: here (no dependency warnings, logs or bars in any command's output) and ``test_cli_train.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "own-data.md"
#: The variables the test sets (the doc's first block sets the same ones for a reader).
VARIABLES = ("REPLENISH_HOME", "TENANT", "DATA", "FREQ", "SERIES", "PERIODS", "PORT")
#: Variables set by the marked blocks themselves, or by bash.
SET_IN_BLOCKS = ("KEY", "SERVE_PID", "kind", "i", "PWD")
#: The unit the doc asks for over HTTP.
UNIT = "SKU_001|STORE_001|store"
#: Dependency noise that the quiet output must not show.
NOISE = ("Traceback", "GPU available", "LeafSpec", "Successfully registered", "Downloading artifacts",
         "litlogger", "Warning:", "it/s]")
MARK = "@@ block {} @@"


def run_blocks(text: str) -> list[str]:
    """The ```bash blocks of ``text`` whose previous non-empty line is ``<!-- run -->``, in order."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            prev = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            end = lines.index("```", i + 1)
            if prev == "<!-- run -->":
                blocks.append("\n".join(lines[i + 1:end]))
            i = end
        i += 1
    return blocks


def _script(blocks: list[str]) -> str:
    parts = ["set -euo pipefail"]
    for n, b in enumerate(blocks):
        parts += [f"printf '\\n{MARK.format(n)}\\n'", b]  # a block's output may end without a newline
    return "\n".join(parts) + "\n"


def _split(output: str, n: int) -> list[str]:
    """The output of each of the ``n`` blocks (text between the markers)."""
    pieces = re.split(r"^@@ block (\d+) @@$", output, flags=re.M)
    out = [""] * n
    for k in range(1, len(pieces) - 1, 2):
        out[int(pieces[k])] = pieces[k + 1]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(pid: int) -> None:
    """Stop the server the doc started (by its pid): SIGTERM as the doc does, SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def test_doc_marks_its_runnable_blocks_and_documents_their_variables():
    text = DOC.read_text()
    blocks = run_blocks(text)
    assert len(blocks) >= 8, "synth, ingest, settings, train, promote, cycle, export, serve"
    script = "\n".join(blocks)
    for cmd in ("replenish synth", "replenish ingest", "replenish train", "replenish cycle",
                "replenish forecasts export", "replenish keys create", "replenish serve", "/v1/forecasts"):
        assert cmd in script, cmd
    assert "python" not in script.lower(), "no Python step in the walkthrough"
    assert "--config" not in script.replace("-c $TENANT.yaml", "")  # one settings file, given once
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", script))
    assert used <= set(VARIABLES) | set(SET_IN_BLOCKS), used - set(VARIABLES) - set(SET_IN_BLOCKS)
    first = text.split("```bash", 1)[1].split("```", 1)[0]  # the reader's variables block
    for var in VARIABLES:
        assert f"{var}=" in first, var
    # The ingest order of the doc is features.synth's (master data first).
    from features.synth import SynthData

    loop = next(b for b in blocks if "replenish ingest" in b)
    kinds = re.search(r"for kind in (.*?); do", loop, flags=re.S).group(1).replace("\\", " ").split()
    assert tuple(kinds) == SynthData.INGEST_ORDER


def test_sales_before_master_data_are_quarantined_then_stored_after_it(tmp_path):
    """The doc's order and its first common error: unknown SKUs are quarantined, never guessed; sending the
    same sales file again after the master data stores it."""
    from typer.testing import CliRunner

    from features.synth import SynthData, generate
    from serving.cli import app

    data = generate(6, 12, freq="M", seed=1)
    paths = data.write(tmp_path / "files")
    cli = CliRunner()
    early = cli.invoke(app, ["ingest", "sales", str(paths["sales"]), "--tenant", "t1"])
    assert early.exit_code == 2, early.output
    assert "rejected" in early.output and "sku_id" in early.output
    q = cli.invoke(app, ["quarantine", "list", "--tenant", "t1", "--kind", "sales", "--limit", "3"])
    assert q.exit_code == 0 and "a known" in q.output and "sku" in q.output
    for kind in SynthData.INGEST_ORDER[:6]:
        r = cli.invoke(app, ["ingest", kind, str(paths[kind]), "--tenant", "t1"])
        assert r.exit_code == 0, (kind, r.output)
    again = cli.invoke(app, ["ingest", "sales", str(paths["sales"]), "--tenant", "t1"])
    assert again.exit_code == 0, again.output
    stored = int(re.search(r"stored \(new\)\s+([\d,]+)", again.output).group(1).replace(",", ""))
    assert stored == data.sales.height
    once_more = cli.invoke(app, ["ingest", "sales", str(paths["sales"]), "--tenant", "t1"])
    assert once_more.exit_code == 0
    assert "nothing added" in " ".join(once_more.output.split()), once_more.output


def test_a_settings_file_refused_by_the_data_checks_is_not_remembered(tmp_path):
    """`train -c` with the doc's top-level profile keys: a file the data refuses (before training) changes
    nothing in the profile, whether the refusal is an encoder longer than any series or a holdout shorter than
    the file's own horizon."""
    import yaml
    from typer.testing import CliRunner

    from features.ingest import ingest
    from features.profile import get_profile
    from features.settings import get_settings
    from features.store._db import make_engine
    from features.synth import SynthData, generate
    from serving.cli import app

    paths = generate(6, 24, freq="M", seed=2).write(tmp_path / "files")
    for kind in SynthData.INGEST_ORDER:
        ingest(kind, paths[kind], tenant="t2")
    engine = make_engine(get_settings().database_url)
    before = get_profile(engine, "t2")
    for bad in ({"hierarchy": [[], ["region"]], "reconcile_method": "ols", "fit": {"encoder_length": 90}},
                {"horizon": 6, "holdout": 3, "reconcile_method": "ols"}):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        out = CliRunner().invoke(app, ["train", "--tenant", "t2", "-c", str(path)])
        text = " ".join(out.output.split())
        assert out.exit_code == 2, out.output
        assert "encoder_length = 90" in text or "holdout = 3 is shorter than fit.horizon = 6" in text, text
        assert "Traceback" not in out.output
        assert get_profile(engine, "t2") == before
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("freq", "periods", "grid"),
    [pytest.param("M", 60, "MS", id="monthly"), pytest.param("D", 200, "D", id="daily")],
)
def test_walkthrough_from_empty_home_to_served_forecasts(tmp_path, freq, periods, grid):
    from features.forecasts import read_forecasts
    from features.settings import load_settings
    from features.store._db import make_engine, session_scope
    from workflow.evidence import get as get_evidence
    from workflow.lifecycle import list_recommendations

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    tenant, port = "acme", _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLENISH_")}
    env.update(
        REPLENISH_HOME=str(home), TENANT=tenant, DATA=str(work / "acme-files"), FREQ=freq, SERIES="40",
        PERIODS=str(periods), PORT=str(port), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    blocks = run_blocks(DOC.read_text())
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["bash", "-c", _script(blocks)], cwd=work, env=env, capture_output=True,
                              text=True, timeout=1500)
    finally:
        pid_file = work / "serve.pid"
        if pid_file.exists():
            _stop(int(pid_file.read_text().strip()))
    seconds = time.monotonic() - t0
    print(proc.stdout)  # the walkthrough's own output (shown with -s, or on failure)
    out = _split(proc.stdout, len(blocks))
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    by_cmd = {cmd: next(o for b, o in zip(blocks, out, strict=True) if cmd in b)
              for cmd in ("replenish train", "models promote", "replenish cycle", "forecasts export",
                          "keys create", "/v1/forecasts")}

    # Quiet output: none of our dependencies' warnings, logs or bars on the terminal.
    for noise in NOISE:
        assert noise not in proc.stdout + proc.stderr, noise

    # train: the grid is read from the dates; the settings file was remembered (no repeated --config).
    assert f"backtest of {tenant}-tft version 1 ({grid}," in by_cmd["replenish train"]
    assert f"{tenant}-tft" in by_cmd["models promote"] and tenant in by_cmd["models promote"].split(
        f"{tenant}-tft", 2)[-1]  # `models list` without --name lists the tenant's model with its tenant

    # cycle: every stage succeeded; the remembered reconciliation method was used; proposals were made.
    cycle = " ".join(by_cmd["replenish cycle"].split())
    assert f"for tenant {tenant}: succeeded" in cycle, cycle
    assert "reconciliation: mint_shrink" in cycle and f"model: {tenant}-tft version 1" in cycle
    n_recs = int(re.search(r"recommendations: (\d+)", cycle).group(1))
    assert n_recs > 0

    # forecasts export: CSV and Parquet with separate key columns, run id and model version.
    csv = pl.read_csv(work / f"{tenant}-forecasts.csv")
    parquet = pl.read_parquet(work / f"{tenant}-forecasts.parquet")
    for frame in (csv, parquet):
        assert {"sku_id", "location_id", "channel_id", "unique_id", "run_id", "model_version", "date",
                "p10", "p50", "p90"} <= set(frame.columns)
        assert frame["run_id"].n_unique() == 1 and frame.height == 40 * frame["horizon"].max()

    # Served forecast == the stored reconciled forecast of that unit (read from the store, not the CLI).
    settings = load_settings(home=home)
    answer = json.loads(next(ln for ln in by_cmd["/v1/forecasts"].splitlines() if ln.startswith("{")))
    assert answer["tenant"] == tenant and answer["freq"] == grid and answer["method"] == "mint_shrink"
    stored = read_forecasts(tenant, "reconciled", answer["run_id"], units=[UNIT],
                            facts_dir=settings.facts_dir).sort("horizon")
    served = answer["forecasts"][0]
    assert served["unit"] == UNIT and stored.height == answer["horizon"] == len(served["dates"])
    assert served["dates"] == [d.isoformat() for d in stored["date"]]
    for q, values in served["quantiles"].items():
        assert values == pytest.approx(stored[q].to_list(), rel=1e-3, abs=1e-3), q
    if grid == "MS":
        assert all(d.endswith("-01") for d in served["dates"])
    assert (csv.filter(pl.col("unique_id") == UNIT).sort("horizon")["p50"].to_list()
            == pytest.approx(stored["p50"].to_list(), rel=1e-6))

    # The server the doc started was stopped by the doc (by its pid).
    pid = int((work / "serve.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    # Proposed recommendations of the cycle, whose evidence names the model version and the method.
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as s:
            recs = list_recommendations(s, tenant, limit=10_000)
            body = get_evidence(s, tenant, recs[0].evidence_sha256).body
    finally:
        engine.dispose()
    assert len(recs) == n_recs
    assert body["model_version"] == "1" and body["reconciliation_method"] == "mint_shrink"
    print(f"\nown-data walkthrough ({grid}, 40 series x {periods} periods): {seconds:.0f} s, "
          f"{n_recs} recommendations, served run {answer['run_id']}")
