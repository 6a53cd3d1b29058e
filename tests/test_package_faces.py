"""Each package is used through its public face: no import of another package's private module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("package_faces", ROOT / "scripts" / "package_faces.py")
faces = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faces)


def test_no_package_imports_another_packages_private_module():
    assert faces.violations() == []


def test_import_module_only_at_the_named_plugin_points():
    assert faces.dynamic_imports() == []
    for path in faces.PLUGIN_POINTS:
        assert (ROOT / path).is_file(), path


def test_the_check_finds_a_private_import_from_outside_and_allows_one_from_inside(tmp_path):
    for package in faces.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    store = tmp_path / "features" / "store"
    store.mkdir()
    store.joinpath("__init__.py").write_text("from features.store._db import utcnow\n")  # its own: allowed
    store.joinpath("_db.py").write_text("def utcnow(): ...\n")
    store.joinpath("other.py").write_text("from .._tables import x\n")  # its parent's private module: allowed
    (tmp_path / "workflow" / "_models.py").write_text("")
    (tmp_path / "workflow" / "jobs.py").write_text(
        "from features.store import utcnow\n"
        "from features.store._db import utcnow as u\n"  # another package's private module
        "from . import _models\n"
        "import features.store._db\n"
    )
    assert faces.violations(tmp_path) == [
        "workflow/jobs.py:2: features.store._db.utcnow",
        "workflow/jobs.py:4: features.store._db",
    ]
