"""Imports that reach into another package's private modules.

A module may import a private module (a path component starting with ``_``) only from
inside the package that owns it: ``serving.pages._views`` from ``serving.pages.*``, never
from ``serving.api`` or ``workflow``.  ``import_module`` calls on project code are listed
too; the plugin points that may use them are named in ``PLUGIN_POINTS``.

    python scripts/package_faces.py          # list, exit 1 when any is found
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "training", "kernels", "planning", "workflow", "serving")

# Modules that load project code by name on purpose, and why.
PLUGIN_POINTS = {
    "planning/__init__.py": "lazy public names (PEP 562), so `import planning` stays light",
    "serving/cycle.py": "the cycle's stage table names each stage's (module, function)",
    "serving/cli/__init__.py": "each command module registers itself with the CLI",
    "serving/deploy/_predictors.py": "a predictor class named in the deployment config",
    "features/store/migrations/env.py": "the migration owners registered by the caller",
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names]


def _private_owner(target: str, root: Path) -> str | None:
    """The package that owns the first private component of ``target``.

    A private module belongs to the package it sits in; a private name imported from a module belongs to that
    module's package too (siblings may share helpers, other packages may not).
    """
    parts = target.split(".")
    if parts[0] not in PACKAGES:
        return None
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = parts[:i]
            if root.joinpath(*owner).with_suffix(".py").is_file():
                owner = owner[:-1]
            return ".".join(owner)
    return None


def violations(root: Path = ROOT) -> list[str]:
    """``path:line: target`` of each import of a private module from outside the package that owns it."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(path, root)
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                for target in _targets(node, module, path.name == "__init__.py"):
                    owner = _private_owner(target, root)
                    if owner is not None and not (module + ".").startswith(owner + "."):
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {target}")
    return found


def dynamic_imports(root: Path = ROOT) -> list[str]:
    """``path:line`` of each ``import_module`` call outside :data:`PLUGIN_POINTS`."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = str(path.relative_to(root))
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
                        == "import_module" and rel not in PLUGIN_POINTS):
                    found.append(f"{rel}:{node.lineno}: import_module")
    return found


def main() -> int:
    """Print the violations and their counts; 1 when there is any."""
    private, dynamic = violations(), dynamic_imports()
    for line in private + dynamic:
        print(line)
    print(f"{len(private)} private imports across packages, {len(dynamic)} import_module calls "
          f"outside the {len(PLUGIN_POINTS)} plugin points")
    return 1 if private or dynamic else 0


if __name__ == "__main__":
    sys.exit(main())
