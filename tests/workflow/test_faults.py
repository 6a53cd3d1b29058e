"""Fault tests: a dispatcher SIGKILLed between sending and recording, and a receiver that is down for a while.

A real HTTP receiver on 127.0.0.1 (tests/workflow/_helpers.py) verifies signatures and honours idempotency
keys. Every approved action must arrive, none be processed twice, nothing be lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from features.store._db import session_scope
from tests.workflow._helpers import SECRET, Receiver, propose
from workflow import audit, lifecycle, outbox
from workflow.adapters import WebhookAdapter
from workflow.dispatcher import Dispatcher, RetryPolicy
from workflow.schemas import AutoApprove

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sigkill_between_send_and_record_and_receiver_outage(engine, db_url, tenants, tmp_path):
    n, batch, lease_s = 30, 10, 3.0
    recs = [
        propose(engine, "a", route=None, auto_approve=AutoApprove(rule="small"), sku_id=f"SKU-{i}").id
        for i in range(n)
    ]
    receiver = Receiver().start()
    port = receiver.port

    # 1. A dispatcher process sends one batch, then is SIGKILLed before it records anything.
    marker = tmp_path / "sent.json"
    child = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/workflow/_dispatch_child.py"),
            db_url,
            receiver.url,
            SECRET,
            str(marker),
            str(lease_s),
            str(batch),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    killed = json.loads(marker.read_text())
    assert child.returncode == -signal.SIGKILL and len(killed["keys"]) == batch and all(killed["ok"])
    with session_scope(engine) as s:
        assert outbox.counts(s, "a") == {"pending": n, "delivered": 0, "dead": 0}  # nothing was recorded
        assert {lifecycle.get(s, "a", r).state for r in recs} == {"approved"}
    assert len(receiver.processed) == batch

    # 2. The receiver goes down; a new dispatcher keeps trying with backoff; the receiver comes back.
    receiver.stop()
    down_s = 1.5
    refused_before_back = {}

    def bring_back():
        time.sleep(down_s)
        with session_scope(engine) as s:
            refused_before_back["pending"] = outbox.counts(s, "a")["pending"]
        receiver.port = port
        receiver.start()

    threading.Thread(target=bring_back, daemon=True).start()
    d = Dispatcher(
        engine,
        WebhookAdapter(f"http://127.0.0.1:{port}/hook", SECRET),
        rng=np.random.default_rng(7),
        policy=RetryPolicy(max_attempts=100, base_delay_s=0.05, max_delay_s=0.4),
        lease_s=lease_s,
        batch_size=batch,
    )
    total = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        st = d.run_once()
        total = st if total is None else (total.add(st) or total)
        with session_scope(engine) as s:
            if outbox.counts(s, "a")["delivered"] == n:
                break
        if st.claimed == 0:
            time.sleep(0.05)
    receiver.stop()

    with session_scope(engine) as s:
        counts = outbox.counts(s, "a")
        states = [lifecycle.get(s, "a", r).state for r in recs]
        ok = audit.verify(s, "a").ok
    processed_twice = [k for k, c in receiver.processed.items() if c != 1]
    print(
        f"\n[{engine.dialect.name}] approved {n}; killed dispatcher had sent {len(killed['keys'])} "
        f"unrecorded; "
        f"receiver down {down_s}s (retries scheduled: {total.retried}, pending when it came back: "
        f"{refused_before_back.get('pending')}); receiver requests {receiver.requests}, processed "
        f"{len(receiver.processed)} unique, duplicates answered {receiver.duplicates}, processed twice "
        f"{len(processed_twice)}; outbox {counts}; recommendations sent {states.count('sent')}/{n}"
    )
    assert counts == {"pending": 0, "delivered": n, "dead": 0}  # nothing lost
    assert states == ["sent"] * n
    assert sorted(receiver.processed) == sorted(f"{r}-v2" for r in recs)  # every approved action arrived
    assert processed_twice == []  # none processed twice
    assert receiver.duplicates >= batch  # the killed batch was re-sent and recognised by its keys
    assert total.retried > 0 and refused_before_back["pending"] > 0  # the outage really forced retries
    assert receiver.rejected_signatures == 0
    assert ok
