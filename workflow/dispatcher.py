"""The outbox dispatcher: claims due items, sends them through adapters, records the outcome.

Each round is three steps, each its own transaction or none: claim (lease + attempt count), send (no
transaction is held open while the network is used), record (``delivered`` and the recommendation ``sent``, or
a retry time, or a dead letter). A crash between send and record leaves the lease to expire; the item is then
claimed and sent again with the same idempotency key (at-least-once delivery; exactly-once effect at a
receiver that honours the key). Attempts are counted at claim time, so an item that crashes its dispatcher
still reaches the dead-letter list instead of looping forever.

Retry delays grow exponentially with "equal jitter" (Brooker, *Exponential Backoff And Jitter*, AWS
Architecture Blog 2015): ``d = min(max_delay, base * 2**(attempt-1))``, wait ``d/2 + U(0, d/2)``.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from features.store import session_scope, utcnow
from workflow.adapters import Adapter, Delivery
from workflow.outbox import (
    Claimed,
    LostLease,
    claim,
    flush_journal,
    record_failure,
    record_success,
    record_successes,
)

__all__ = ["DispatchStats", "Dispatcher", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Attributes:
        max_attempts: attempts before an item is dead-lettered.
        base_delay_s: delay scale of the first retry.
        max_delay_s: cap of the exponential delay.
    """

    max_attempts: int = 8
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0

    def __post_init__(self):
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("RetryPolicy: need max_attempts >= 1 and 0 <= base_delay_s <= max_delay_s")

    def delay(self, attempt: int, rng: np.random.Generator) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        d = min(self.max_delay_s, self.base_delay_s * 2.0 ** max(attempt - 1, 0))
        return d / 2 + float(rng.uniform(0.0, d / 2))


@dataclass
class DispatchStats:
    """Counts of one or more dispatch rounds."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lost_lease: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DispatchStats) -> None:
        """Accumulate ``other`` into this."""
        for f in ("claimed", "delivered", "retried", "dead", "lost_lease"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.errors.extend(other.errors[-10:])
        del self.errors[:-50]


class Dispatcher:
    """Delivers outbox items.

    Args:
        engine: the state store.
        adapters: one adapter for every kind, or a mapping ``kind -> adapter``.
        rng: randomness for the jitter.
        policy: retry policy.
        batch_size: items claimed per round.
        lease_s: how long a claim is ours; longer than the slowest send.
        owner: this dispatcher's name in the lease column (default host:pid:random).
        on_sent: called after sending and before recording (fault-injection hook for tests).
    """

    def __init__(
        self,
        engine: Engine,
        adapters: Adapter | Mapping[str, Adapter],
        *,
        rng: np.random.Generator,
        policy: RetryPolicy | None = None,
        batch_size: int = 50,
        lease_s: float = 30.0,
        owner: str | None = None,
        on_sent: Callable[[Sequence[Claimed], Sequence[Delivery]], None] | None = None,
    ):
        self.engine, self.rng = engine, rng
        self.policy = policy or RetryPolicy()
        self.batch_size, self.lease_s = batch_size, lease_s
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._adapters = adapters
        self._on_sent = on_sent

    def _adapter(self, kind: str) -> Adapter:
        if isinstance(self._adapters, Mapping):
            try:
                return self._adapters[kind]
            except KeyError:
                raise LookupError(f"no adapter configured for kind {kind!r}") from None
        return self._adapters

    def run_once(self) -> DispatchStats:
        """Claim one batch, send it, record every outcome."""
        stats = DispatchStats()
        with session_scope(self.engine) as s:
            items = claim(s, self.owner, limit=self.batch_size, lease_s=self.lease_s)
        stats.claimed = len(items)
        if not items:
            return stats
        by_adapter: dict[int, tuple[Adapter, list[int]]] = {}
        results: list[Delivery] = [Delivery(False)] * len(items)
        for i, item in enumerate(items):
            try:
                ad = self._adapter(item.kind)
            except LookupError as exc:
                results[i] = Delivery(False, False, str(exc))
                continue
            by_adapter.setdefault(id(ad), (ad, []))[1].append(i)
        for ad, idx in by_adapter.values():
            try:
                sent = ad.send_batch([items[i] for i in idx])
            except Exception as exc:  # an adapter bug must not kill the loop; retry later
                sent = [Delivery(False, True, f"{type(exc).__name__}: {exc}")] * len(idx)
            for i, d in zip(idx, sent, strict=True):
                results[i] = d
        if self._on_sent is not None:
            self._on_sent(items, results)
        # Fast path: the whole batch in one transaction. If any item was taken over meanwhile (or the store
        # refuses), record item by item instead, each in its own transaction.
        try:
            with session_scope(self.engine) as s:
                ok = [(it, d) for it, d in zip(items, results, strict=True) if d.ok]
                journal: dict = {}  # one journal append per tenant for the whole batch
                delivered = record_successes(
                    s, [it for it, _ in ok], self.owner, [d.external_ref for _, d in ok], journal=journal
                )
                batch = DispatchStats(delivered=delivered)
                for item, d in zip(items, results, strict=True):
                    if not d.ok:
                        self._record_in(s, item, d, batch, journal)
                flush_journal(s, journal)
            stats.add(batch)
        except (LostLease, DBAPIError):
            for item, d in zip(items, results, strict=True):
                try:
                    with session_scope(self.engine) as s:
                        self._record_in(s, item, d, stats, None)
                except LostLease:
                    stats.lost_lease += 1
        return stats

    def _record_in(self, s, item: Claimed, d: Delivery, stats: DispatchStats, journal: dict | None) -> None:
        if d.ok:
            if record_success(s, item, self.owner, external_ref=d.external_ref, journal=journal):
                stats.delivered += 1
            else:
                stats.lost_lease += 1
            return
        give_up = not d.retryable or item.attempts >= self.policy.max_attempts
        retry_at = (
            None if give_up else utcnow() + timedelta(seconds=self.policy.delay(item.attempts, self.rng))
        )
        status = record_failure(s, item, self.owner, d.detail, retry_at=retry_at, journal=journal)
        stats.retried += status == "pending"
        stats.dead += status == "dead"
        stats.lost_lease += status == ""
        stats.errors.append(f"{item.idempotency_key}: {d.detail}")

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        poll_s: float = 0.5,
        until_idle: bool = False,
        max_rounds: int | None = None,
    ) -> DispatchStats:
        """Dispatch until ``stop`` is set (or, with ``until_idle``, until a round finds nothing due)."""
        total, rounds = DispatchStats(), 0
        stop = stop or threading.Event()
        while not stop.is_set() and (max_rounds is None or rounds < max_rounds):
            st = self.run_once()
            total.add(st)
            rounds += 1
            if st.claimed == 0:
                if until_idle:
                    break
                stop.wait(poll_s)
        return total
