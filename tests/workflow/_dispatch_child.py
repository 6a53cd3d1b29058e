"""A dispatcher process that stops dead after its first send: it writes a marker and waits to be SIGKILLed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    db_url, url, secret, marker, lease_s, batch = sys.argv[1:7]
    import numpy as np

    from features.store._db import make_engine
    from workflow.adapters import WebhookAdapter
    from workflow.dispatcher import Dispatcher

    def on_sent(items, results):
        # Sent, not recorded: tell the test which keys went out, then hang until killed.
        Path(marker).write_text(
            json.dumps({"keys": [i.idempotency_key for i in items], "ok": [r.ok for r in results]})
        )
        time.sleep(600)

    engine = make_engine(db_url)
    Dispatcher(
        engine,
        WebhookAdapter(url, secret),
        rng=np.random.default_rng(1),
        lease_s=float(lease_s),
        batch_size=int(batch),
        on_sent=on_sent,
    ).run_once()


if __name__ == "__main__":
    main()
