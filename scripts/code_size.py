"""Modules over 600 lines and functions over 120 lines across the tree, against an explicit allowlist.

The house rule (CONTRIBUTING, issue 16): modules <= 600 lines, functions <= 120 lines. The ones already
over are listed in :data:`ALLOWED` with their size when listed, each to be split by its owner; a new one,
or a listed one that grew, fails ``tests/test_code_size.py``. Run it to print the current list::

    python scripts/code_size.py            # every module / function over the limits, allowed or not
    python scripts/code_size.py --check    # exit 1 on one not allowed (or grown past its allowance)
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Folders scanned (the packages, their tests, benchmarks and scripts).
FOLDERS = ("features", "training", "kernels", "planning", "workflow", "serving", "tests", "benchmarks")
FOLDERS += ("scripts",)
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 120

#: Known exceptions, "path" or "path:qualified.name" -> lines when listed (a file may shrink, not grow).
ALLOWED: dict[str, int] = {
    # functions
    "workflow/migrations/versions/w0001_control_plane.py:upgrade": 272,  # a migration: one table per block
    "features/store/migrations/versions/f0002_catalogue.py:upgrade": 260,  # a migration, as above
    "benchmarks/serving.py:main": 181,
    "planning/_inputs.py:inputs_from_frames": 175,
    "benchmarks/reconcile.py:main": 150,
    "serving/cli/_plan.py:plan_cmd": 134,
    "features/synth.py:generate": 124,
    # one end-to-end scenario, its steps in the order a reader follows them (cycle → override → dispatch →
    # supplier response → exception → re-plan → receipt → actuals → monitoring → events)
    "tests/serving/test_supplier_loop.py:"
    "test_approve_dispatch_supplier_confirms_60_percent_and_the_replan_allocates_it": 250,
}


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node.end_lineno - node.lineno + 1
            yield from _functions(node, name + ".")


def oversized(root: Path = ROOT) -> dict[str, int]:
    """Every module over :data:`MAX_MODULE_LINES` and function over :data:`MAX_FUNCTION_LINES`, by key."""
    found: dict[str, int] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text()
            n_lines = len(text.splitlines())
            if n_lines > MAX_MODULE_LINES:
                found[rel] = n_lines
            for name, size in _functions(ast.parse(text, filename=rel)):
                if size > MAX_FUNCTION_LINES:
                    found[f"{rel}:{name}"] = size
    return found


def violations(found: dict[str, int]) -> list[str]:
    """The entries of ``found`` that are not allowed, or larger than their allowance."""
    return [
        f"{k}: {v} lines (allowed: {ALLOWED[k]})"
        if k in ALLOWED
        else f"{k}: {v} lines (not in the allowlist)"
        for k, v in sorted(found.items())
        if k not in ALLOWED or v > ALLOWED[k]
    ]


def main() -> None:
    """Print the list (and the allowlist's entries now under the limits); with --check, fail on a new one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 on a module or function not allowed")
    a = ap.parse_args()
    found = oversized()
    for k, v in sorted(found.items(), key=lambda kv: (":" in kv[0], -kv[1])):
        print(f"{v:5d}  {k}{'' if k in ALLOWED else '   (new)'}")
    bad = violations(found)
    print(
        f"{sum(':' not in k for k in found)} modules > {MAX_MODULE_LINES} lines, "
        f"{sum(':' in k for k in found)} functions > {MAX_FUNCTION_LINES} lines; {len(bad)} not allowed"
    )
    stale = sorted(set(ALLOWED) - set(found))
    if stale:
        print(f"under the limits now, remove from ALLOWED: {stale}")
    if a.check and bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
