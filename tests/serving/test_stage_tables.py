"""Every stage of the cycle and every scheduled job names a function that exists."""

from __future__ import annotations

import pytest

from serving.cycle import STAGE_FUNCTIONS, resolve_function
from serving.jobs import JOB_FUNCTIONS


@pytest.mark.parametrize(("table", "key"), [*(("stage", k) for k in STAGE_FUNCTIONS),
                                            *(("job", k) for k in JOB_FUNCTIONS)])
def test_each_entry_resolves_to_a_function(table, key):
    target = (STAGE_FUNCTIONS if table == "stage" else JOB_FUNCTIONS)[key]
    assert callable(resolve_function(target, f"{table} {key!r}"))


def test_a_missing_function_is_named():
    with pytest.raises(AttributeError, match=r"serving.cycle has no function 'nope' \(stage 'x'\)"):
        resolve_function(("serving.cycle", "nope"), "stage 'x'")
    with pytest.raises(ModuleNotFoundError):
        resolve_function(("serving.no_such_module", "f"), "stage 'y'")
