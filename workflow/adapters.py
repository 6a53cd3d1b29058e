"""Adapters that carry outbox items to the systems of record: signed webhooks and file drops.

Webhook signing (what a receiver must check, :func:`verify_signature` does it):

* ``X-Replenish-Timestamp``: Unix seconds when the request was signed;
* ``X-Replenish-Signature``: ``v1=`` + hex HMAC-SHA256 over ``<timestamp>.<raw body>`` with the shared secret;
* ``Idempotency-Key``: the outbox item's key, equal across retries; the receiver must process a key once and
  answer a repeat with 2xx (``409`` is also taken as "already have it").

A request older than the tolerance (default 300 s) is refused, so a captured request cannot be replayed later.

Outcomes: 2xx (and 409) delivered; 408, 425, 429, 5xx and network errors are retried; any other 4xx is a
permanent error and dead-letters the item at once.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workflow._canonical import canonical_json
from workflow.outbox import Claimed

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Adapter",
    "Delivery",
    "FileDropAdapter",
    "SignatureError",
    "WebhookAdapter",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Replenish-Signature"
TIMESTAMP_HEADER = "X-Replenish-Timestamp"
_RETRYABLE = {408, 425, 429}


@dataclass(frozen=True)
class Delivery:
    """Outcome of one attempt to deliver one item."""

    ok: bool
    retryable: bool = True
    detail: str = ""
    external_ref: str | None = None


class Adapter(Protocol):
    """Delivers a batch of claimed items; returns one :class:`Delivery` per item, in order."""

    def send_batch(self, items: Sequence[Claimed]) -> list[Delivery]:
        """Deliver ``items``."""
        ...


class SignatureError(ValueError):
    """A webhook request's signature is missing, wrong or stale."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Replenish-Signature`` value for ``body`` signed at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> None:
    """Check a received webhook (for receivers, and for our tests' receiver).

    Raises:
        SignatureError: header missing, timestamp not an integer or outside ``tolerance_s`` of ``now``,
            or signature mismatch.
    """
    if not timestamp or not signature:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be integer Unix seconds, got {timestamp!r}") from None
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        raise SignatureError(f"stale timestamp: {now - ts:.0f} s from now (tolerance {tolerance_s:.0f} s)")
    if not hmac.compare_digest(sign(secret, ts, body), signature):
        raise SignatureError("signature does not match the body")


class WebhookAdapter:
    """POSTs each item as signed JSON to ``url`` (one request per item, keep-alive connection).

    Args:
        url: the receiver's endpoint.
        secret: shared HMAC secret (``Settings.webhook_secret``).
        timeout_s: per-request timeout.
        production: refuse ``http://`` URLs and secrets under 32 characters (default: ``env`` of the settings
            is ``production``).

    Raises:
        ValueError: an ``http://`` URL or a short secret in production; a URL that is not http(s).
    """

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0, production: bool | None = None):
        import httpx  # noqa: PLC0415 - keep import time small

        if production is None:
            from features.settings import get_settings

            production = get_settings().env == "production"
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("https", "http") or (production and scheme != "https"):
            allowed = "https://" if production else "http:// or https://"
            raise ValueError(
                f"webhook url {url!r}: expected an {allowed} URL" + (" in production" if production else "")
            )
        if production and len(secret) < 32:
            raise ValueError("webhook secret: at least 32 characters in production")
        self.url, self.secret = url, secret
        self._client = httpx.Client(timeout=timeout_s)
        self._httpx = httpx

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def send_batch(self, items: Sequence[Claimed]) -> list[Delivery]:
        """Deliver each item; see the module docstring for how responses map to outcomes."""
        return [self.send(item) for item in items]

    def send(self, item: Claimed) -> Delivery:
        """Deliver one item."""
        body = canonical_json(item.payload)
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": item.idempotency_key,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self.secret, ts, body),
        }
        try:
            resp = self._client.post(self.url, content=body, headers=headers)
        except self._httpx.HTTPError as exc:
            return Delivery(False, True, f"{type(exc).__name__}: {exc}")
        if 200 <= resp.status_code < 300 or resp.status_code == 409:
            ref = None
            try:
                ref = (resp.json() or {}).get("reference")
            except ValueError:
                pass
            return Delivery(True, False, f"HTTP {resp.status_code}", ref)
        retryable = resp.status_code >= 500 or resp.status_code in _RETRYABLE
        return Delivery(False, retryable, f"HTTP {resp.status_code}: {resp.text[:300]}")


class FileDropAdapter:
    """Writes each batch as a JSON file and a CSV file an ERP imports, under ``<root>/<tenant>/<kind>/``.

    A file's name is the SHA-256 of its items' idempotency keys, and it is written to a temporary name then
    renamed, so the ERP never sees half a file and re-sending the same batch rewrites the same file. Importers
    must skip rows whose ``idempotency_key`` they already have (a retried item can appear in a later batch).
    """

    COLUMNS = (
        "idempotency_key",
        "recommendation_id",
        "kind",
        "decision",
        "sku_id",
        "location_id",
        "from_location_id",
        "supplier_id",
        "quantity",
        "unit_cost",
        "value",
        "need_by",
    )

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def send_batch(self, items: Sequence[Claimed]) -> list[Delivery]:
        """Write ``items`` grouped by tenant and kind; a failed write fails (and retries) its group only."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.tenant_id, item.kind), []).append(i)
        out: list[Delivery] = [Delivery(False)] * len(items)
        for (tenant, kind), idx in groups.items():
            batch = [items[i] for i in idx]
            try:
                name = self._write(tenant, kind, batch)
                res = Delivery(True, False, f"file {name}", name)
            except OSError as exc:
                res = Delivery(False, True, f"{type(exc).__name__}: {exc}")
            for i in idx:
                out[i] = res
        return out

    def _write(self, tenant: str, kind: str, batch: Sequence[Claimed]) -> str:
        folder = self.root / tenant / kind
        folder.mkdir(parents=True, exist_ok=True)
        keys = sorted(it.idempotency_key for it in batch)
        name = "batch-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]
        docs = [it.payload for it in sorted(batch, key=lambda it: it.idempotency_key)]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for d in docs:
            w.writerow({c: ("" if d.get(c) is None else d.get(c)) for c in self.COLUMNS})
        self._atomic(folder / f"{name}.json", json.dumps({"items": docs}, indent=1, sort_keys=True).encode())
        self._atomic(folder / f"{name}.csv", buf.getvalue().encode())
        return name

    @staticmethod
    def _atomic(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
