"""A serving replica's scheduler in its own process (the start-up code of the Jobs replicas).

Every job the scheduler starts is also appended to a log file (``job pid``), so the test can count what each
process ran against the runs it recorded. SIGTERM stops it the way a replica stops (the lease is given up).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading


def main() -> None:
    log_path, lease_s = sys.argv[1], float(sys.argv[2])
    from features.settings import get_settings
    from serving import jobs

    build = jobs.build_specs
    lock = threading.Lock()

    def logged(spec):
        def run():
            with lock, open(log_path, "a") as f:
                f.write(f"{spec.name} {os.getpid()}\n")
            return spec.run()

        return dataclasses.replace(spec, run=run)

    jobs.build_specs = lambda *a, **k: [logged(s) for s in build(*a, **k)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sched = jobs.start_scheduler(
        get_settings(),
        intervals_s={"dispatch": 1, "expire": 2, "escalate": 3},
        lease_s=lease_s,
        tick_s=0.2,
        owner=f"replica:{os.getpid()}",
    )
    stop.wait()
    sched.stop()


if __name__ == "__main__":
    main()
