"""No new module over 600 lines and no new function over 120 lines (``scripts/code_size.py``'s allowlist)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("code_size", _ROOT / "scripts" / "code_size.py")
code_size = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(code_size)


def test_no_new_oversized_module_or_function():
    bad = code_size.violations(code_size.oversized())
    assert not bad, (
        "split these (or, with a reason, list them in scripts/code_size.py ALLOWED):\n" + "\n".join(bad)
    )


def test_the_check_catches_a_long_function_and_module(tmp_path):
    pkg = tmp_path / "kernels"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(130))
    inner = body.replace("\n    ", "\n        ").replace("    x0", "        x0", 1)
    text = f"def f():\n{body}\n\n\nclass C:\n    def g(self):\n{inner}\n" + "y = 0\n" * 400
    (pkg / "big.py").write_text(text)
    (pkg / "small.py").write_text("def h():\n    return 1\n")
    found = code_size.oversized(tmp_path)
    assert found == {"kernels/big.py": 665, "kernels/big.py:f": 131, "kernels/big.py:C.g": 131}
    assert len(code_size.violations(found)) == 3
