"""serving.migrations lists every package's migration chain once, labelled as Alembic labels it."""

from __future__ import annotations

import ast
from pathlib import Path

from features.store import FEATURES_MIGRATIONS
from serving.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]


def _branch_label(versions: Path) -> str:
    """The branch label of the chain's first revision (``down_revision = None``)."""
    for path in sorted(versions.glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                values[node.targets[0].id] = ast.literal_eval(node.value)
        if values.get("down_revision") is None:
            labels = values["branch_labels"]
            return labels[0] if isinstance(labels, tuple) else labels
    raise AssertionError(f"{versions}: no first revision")


def test_every_versions_folder_in_the_tree_is_listed_once():
    folders = {
        p.resolve()
        for pkg in ("features", "training", "kernels", "planning", "workflow", "serving")
        for p in (ROOT / pkg).rglob("migrations/versions")
    }
    listed = [c.versions.resolve() for c in (FEATURES_MIGRATIONS, *MIGRATIONS)]
    assert len(listed) == len(set(listed))
    assert set(listed) == folders


def test_each_chain_is_labelled_as_its_first_revision():
    for chain in (FEATURES_MIGRATIONS, *MIGRATIONS):
        assert chain.label == _branch_label(chain.versions), chain
