"""One racing approver process: waits for the start file, then tries to decide every given recommendation."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    db_url, api_key, start_file, rec_ids, action = (
        sys.argv[1],
        sys.argv[2],
        Path(sys.argv[3]),
        sys.argv[4],
        sys.argv[5],
    )
    from features.store._db import make_engine, session_scope
    from workflow import access, lifecycle
    from workflow.errors import IllegalTransition, VersionConflict
    from workflow.schemas import ApproveIn, OverrideIn, RejectIn

    engine = make_engine(db_url)
    with session_scope(engine) as s:
        principal = access.authenticate(s, api_key)
    results = {}
    Path(f"{start_file}.ready.{os.getpid()}").touch()
    while not start_file.exists():
        time.sleep(0.001)
    for rid in rec_ids.split(","):
        try:
            with session_scope(engine) as s:
                if action == "approve":
                    lifecycle.approve(s, principal, rid, ApproveIn(version=2))
                elif action == "override":
                    lifecycle.override(
                        s, principal, rid, OverrideIn(version=2, quantity=1, reason_code="race")
                    )
                else:
                    lifecycle.reject(s, principal, rid, RejectIn(version=2, reason_code="race"))
            results[rid] = "won"
        except (VersionConflict, IllegalTransition) as exc:
            results[rid] = type(exc).__name__
    engine.dispose()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
