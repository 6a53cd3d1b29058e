"""Control-plane commands: ``replenish keys|audit|outbox|recommendations|suppliers ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

keys_app = typer.Typer(help="API keys (stored hashed) bound to a tenant and roles.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
outbox_app = typer.Typer(help="Writeback outbox: dispatch, dead letters, replay.", no_args_is_help=True)
recs_app = typer.Typer(help="Recommendations.", no_args_is_help=True)
suppliers_app = typer.Typer(
    help="Suppliers: order channels, sending orders, importing responses.", no_args_is_help=True
)


def _store():
    from features.settings import get_settings
    from features.store import make_engine
    from serving.migrations import migrate_store

    settings = get_settings()
    settings.ensure_home()
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    return settings, engine


def _tenant(tenant: str | None) -> str:
    from features.settings import get_settings

    return tenant or get_settings().tenant


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    role: Annotated[
        list[str], typer.Option(help="Role: viewer, planner, approver, admin, service (repeatable).")
    ] = (),
    name: Annotated[str, typer.Option(help="Who holds the key.")] = "",
    approval_limit: Annotated[float | None, typer.Option(help="Largest value this key may approve.")] = None,
    create_tenant: Annotated[
        bool,
        typer.Option("--create-tenant/--no-create-tenant", help="Create the tenant if it does not exist."),
    ] = True,
) -> None:
    """Create an API key and print it (shown once; only its hash is stored)."""
    from features.store import session_scope
    from workflow import access
    from workflow.errors import WorkflowError

    _, engine = _store()
    t = _tenant(tenant)
    try:
        with session_scope(engine) as s:
            if create_tenant and access.ensure_tenant(s, t):
                typer.echo(f"created tenant {t}", err=True)
            key_id, plaintext = access.create_key(
                s, t, role, name=name, approval_limit=approval_limit, actor="cli"
            )
    except WorkflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(f"key_id {key_id} tenant {t} roles {','.join(sorted(set(role)))}", err=True)
    typer.echo(plaintext)


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None) -> None:
    """List a tenant's keys (never the secrets)."""
    from features.store import session_scope
    from workflow import access

    _, engine = _store()
    with session_scope(engine) as s:
        for k in access.list_keys(s, _tenant(tenant)):
            state = "revoked" if k.revoked_at else "active"
            typer.echo(f"{k.key_id}  {state:7}  {k.roles:30}  {k.name}")
    engine.dispose()


@keys_app.command("revoke")
def keys_revoke(key_id: str, tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None) -> None:
    """Revoke a key."""
    from features.store import session_scope
    from workflow import access
    from workflow.errors import WorkflowError

    _, engine = _store()
    try:
        with session_scope(engine) as s:
            access.revoke_key(s, _tenant(tenant), key_id, actor="cli")
    except WorkflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"revoked {key_id}")


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: every tenant).")] = None,
) -> None:
    """Verify the audit hash chain (and evidence hashes). Exit code 1 when anything was tampered with."""
    from features.store import session_scope
    from workflow import audit, evidence

    _, engine = _store()
    bad = False
    with session_scope(engine) as s:
        reports = [audit.verify(s, tenant)] if tenant else audit.verify_all(s)
        for r in reports:
            ev_bad = evidence.verify(s, r.tenant_id)
            ok = r.ok and not ev_bad
            bad |= not ok
            typer.echo(
                f"tenant {r.tenant_id}: {'OK' if ok else 'TAMPERED'} ({r.entries} audit entries, head seq "
                f"{r.head_seq}, {len(ev_bad)} bad evidence record(s))"
            )
            for p in r.problems:
                typer.echo(f"  seq {p.seq}: {p.problem}")
            for sha in ev_bad:
                typer.echo(f"  evidence {sha}: content does not match its hash")
    engine.dispose()
    if not reports:
        typer.echo("no audit log yet")
    raise typer.Exit(1 if bad else 0)


@outbox_app.command("dispatch")
def outbox_dispatch(
    webhook_url: Annotated[str | None, typer.Option(help="Deliver by signed webhook to this URL.")] = None,
    file_dir: Annotated[
        Path | None, typer.Option(help="Deliver as CSV/JSON batch files into this folder.")
    ] = None,
    supplier_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of suppliers' file drops (default: <REPLENISH_HOME>/supplier-orders)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once/--loop", help="Stop when nothing is due (default) or keep polling.")
    ] = True,
    max_attempts: Annotated[int, typer.Option(min=1)] = 8,
    base_delay_s: Annotated[float, typer.Option(min=0)] = 1.0,
    max_delay_s: Annotated[float, typer.Option(min=0)] = 300.0,
    lease_s: Annotated[float, typer.Option(min=1)] = 30.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the retry jitter.")] = None,
) -> None:
    """Deliver due outbox items (idempotency keys, retries with backoff and jitter, dead letters).

    By default each item goes where its kind and tenant say: purchase orders to the tenant's ERP target,
    transfers to its WMS, allocations to its OMS, exception updates to its ``exceptions`` target (else the
    ERP) (``PUT /v1/webhooks/{system}``), each signed with that tenant's secret; supplier orders to the
    supplier's channel (``PUT /v1/suppliers/{id}/channel``: webhook, or a file under ``--supplier-dir``). An
    item whose tenant has no target waits for one (its last error says which), then dead-letters.
    ``--webhook-url`` (one target for every tenant, the service's secret; refused in production) or
    ``--file-dir`` replace that.
    """
    import numpy as np

    from workflow.adapters import FileDropAdapter, WebhookAdapter
    from workflow.dispatcher import Dispatcher, RetryPolicy
    from workflow.webhooks import WritebackRouter

    if webhook_url is not None and file_dir is not None:
        typer.echo("error: give at most one of --webhook-url or --file-dir", err=True)
        raise typer.Exit(2)
    from features.settings import get_settings

    production = get_settings().env == "production"
    if webhook_url is not None and production:
        typer.echo(
            "error: --webhook-url sends every tenant's items to one target; in production each tenant's "
            "targets are used (PUT /v1/webhooks/{system}), so leave it out",
            err=True,
        )
        raise typer.Exit(2)
    settings, engine = _store()
    if webhook_url is not None:
        adapter = WebhookAdapter(webhook_url, settings.webhook_secret)
    elif file_dir is not None:
        adapter = FileDropAdapter(file_dir)
    else:
        drops = supplier_dir if supplier_dir is not None else Path(settings.home) / "supplier-orders"
        adapter = WritebackRouter(engine, supplier_drop_root=drops, https_only=production)
    d = Dispatcher(
        engine,
        adapter,
        rng=np.random.default_rng(seed),
        lease_s=lease_s,
        policy=RetryPolicy(max_attempts, base_delay_s, max(max_delay_s, base_delay_s)),
    )
    try:
        stats = d.run(until_idle=once)
    except KeyboardInterrupt:
        stats = None
    finally:
        engine.dispose()
    if stats is not None:
        typer.echo(
            f"claimed {stats.claimed} delivered {stats.delivered} retried {stats.retried} dead {stats.dead} "
            f"lost_lease {stats.lost_lease}"
        )


@outbox_app.command("list")
def outbox_list(
    tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead.")] = None,
) -> None:
    """List outbox items (``--status dead`` for the dead letters)."""
    from features.store import session_scope
    from workflow import outbox

    _, engine = _store()
    with session_scope(engine) as s:
        for i in outbox.list_items(s, _tenant(tenant), status=status, limit=1000):
            typer.echo(
                f"{i.id:6}  {i.status:9}  {i.kind:16}  attempts {i.attempts:2}  {i.idempotency_key}  "
                f"{i.last_error or ''}"
            )
    engine.dispose()


@outbox_app.command("replay")
def outbox_replay(item_id: int, tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None) -> None:
    """Put a dead letter back in the queue (same idempotency key)."""
    from features.store import session_scope
    from workflow import outbox
    from workflow.errors import WorkflowError

    _, engine = _store()
    try:
        with session_scope(engine) as s:
            outbox.replay(s, _tenant(tenant), item_id, actor="cli")
    except WorkflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"replayed {item_id}")


@recs_app.command("expire")
def recs_expire(tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None) -> None:
    """Expire proposed/routed recommendations past their ``expires_at``."""
    from features.store import session_scope
    from workflow import lifecycle

    _, engine = _store()
    with session_scope(engine) as s:
        n = lifecycle.expire_due(s, _tenant(tenant))
    typer.echo(f"expired {n}")


@suppliers_app.command("channel-set")
def suppliers_channel_set(
    supplier_id: str,
    channel: Annotated[str, typer.Option(help="webhook or file.")],
    url: Annotated[str | None, typer.Option(help="Webhook URL (https:// in production).")] = None,
    secret_env: Annotated[
        str | None, typer.Option(help="Name of the environment variable holding the webhook secret.")
    ] = None,
    file_format: Annotated[str, typer.Option(help="json or csv (file drops).")] = "json",
    tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None,
) -> None:
    """Set how a supplier receives the tenant's orders (a webhook, or a file drop under --supplier-dir)."""
    import os

    from features.store import session_scope
    from workflow import suppliers
    from workflow.errors import WorkflowError

    settings, engine = _store()
    secret = os.environ.get(secret_env) if secret_env else None
    try:
        with session_scope(engine) as s:
            out = suppliers.set_channel(
                s,
                _tenant(tenant),
                supplier_id,
                channel,
                url=url,
                secret=secret,
                file_format=file_format,
                actor="cli",
                https_only=settings.env == "production",
            )
    except WorkflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(f"{out['supplier_id']}: {out['channel']} {out['url'] or out['file_format']}")


@suppliers_app.command("channels")
def suppliers_channels(tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None) -> None:
    """List the tenant's supplier channels (never the secrets)."""
    from features.store import session_scope
    from workflow import suppliers

    _, engine = _store()
    with session_scope(engine) as s:
        for c in suppliers.list_channels(s, _tenant(tenant)):
            typer.echo(f"{c['supplier_id']:20}  {c['channel']:8}  {c['url'] or c['file_format']}")
    engine.dispose()


@suppliers_app.command("send")
def suppliers_send(
    order_number: str, tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None
) -> None:
    """Queue a purchase order's document for its supplier's channel (idempotent per order version)."""
    from features.store import session_scope
    from workflow import suppliers
    from workflow.errors import WorkflowError

    _, engine = _store()
    try:
        with session_scope(engine) as s:
            out = suppliers.queue_order(s, _tenant(tenant), order_number, actor="cli")
    except WorkflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    what = "queued" if out["created"] else "already queued"
    typer.echo(f"{what}: outbox item {out['outbox_item_id']} ({out['idempotency_key']})")


@suppliers_app.command("import-responses")
def suppliers_import_responses(
    file: Annotated[Path, typer.Argument(help="A response file, or a folder of them (a suppliers' inbox).")],
    tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None,
    replan: Annotated[
        bool,
        typer.Option("--replan/--no-replan", help="Re-plan the affected units with the confirmed supply."),
    ] = True,
) -> None:
    """Record a file of supplier responses (CSV or JSON, ORDRSP-like; all lines or none, docs/suppliers.md).

    Exit code 2 when the file or a line is refused (the message names the line and the field; nothing is
    stored); 0 otherwise, with what the responses changed. Given a folder (a suppliers' inbox), imports each
    file in it, moving it to ``done/`` or ``rejected/`` (with ``<name>.error.txt``); exit code 1 when any was
    rejected.
    """
    from features.store import session_scope
    from workflow.errors import WorkflowError
    from workflow.supplier_responses import (
        apply_responses,
        import_folder,
        read_response_file,
        record_responses,
    )

    settings, engine = _store()
    t = _tenant(tenant)
    if file.is_dir():
        try:
            results = import_folder(engine, t, file, actor="cli:import", settings=settings, replan=replan)
        finally:
            engine.dispose()
        for name, status, message in results:
            typer.echo(f"{status:8}  {name}: {message}")
        if not results:
            typer.echo(f"no response file in {file}")
        raise typer.Exit(1 if any(st == "rejected" for _, st, _ in results) else 0)
    try:
        lines = read_response_file(file)
        with session_scope(engine) as s:
            outcomes = record_responses(s, t, lines, actor="cli:import")
        loop = apply_responses(engine, t, outcomes, settings=settings, replan=replan, actor="cli:import")
    except WorkflowError as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    dup = sum(o.duplicate for o in outcomes)
    typer.echo(f"recorded {len(outcomes) - dup} response(s)" + (f", {dup} repeat(s) skipped" if dup else ""))
    for kind, status in sorted(loop.facts.items()):
        typer.echo(f"  {kind} facts: {status}")
    for e in loop.exceptions:
        typer.echo(f"  exception {e['exception_type']} ({e['severity']}): {e['message']}")
    if loop.replan_run_id:
        typer.echo(
            f"  re-plan {loop.replan_run_id}: {len(loop.allocations)} allocation(s), {loop.proposed} proposed"
        )
    for note in loop.notes:
        typer.echo(f"  note: {note}")


def register(app: typer.Typer) -> None:
    """Add the control-plane command groups to ``app``."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    app.add_typer(outbox_app, name="outbox")
    app.add_typer(recs_app, name="recommendations")
    app.add_typer(suppliers_app, name="suppliers")
