"""Start and stop Ray Serve on this machine (loopback by default): ``replenish serve``, demo, tests."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Any

__all__ = ["free_port", "run_app", "shutdown", "start_serve"]

_created_temp_dirs: list[str] = []


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at the moment of the call."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
    temp_dir: str | None = None,
    throughput_optimized: bool = True,
) -> None:
    """Start (or connect to) Ray and start Serve's HTTP proxy on ``host:port``.

    Args:
        host: address the HTTP proxy binds to (``127.0.0.1`` keeps it on loopback).
        port: HTTP port.
        ray_address: an existing cluster (``ray://...`` or ``auto``); ``None`` starts a new local Ray instance
            (never silently joining another one running on this machine).
        num_cpus: logical CPUs of a local instance (the scheduler's budget, not a pinning).
        object_store_memory: bytes of shared memory for a local instance's object store.
        temp_dir: Ray's session folder of a local instance (default: a new folder under the system temp dir).
        throughput_optimized: run the Serve processes of a local instance with Ray's documented
            ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (user code on the replica's event loop, buffered request
            logs, gRPC between proxy and replicas). This process keeps Ray's defaults, so its handles also
            work outside an event loop.
    """
    if ray_address is None:
        # A local single-user instance: Ray 2.60's token auth is for clusters; tests and demos run without it.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve  # reads Serve's constants for this process before the variable below is set

    if throughput_optimized and ray_address is None:
        os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")  # inherited by the local Ray processes
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if ray_address is None:
            if temp_dir is None:
                # Short on purpose: Ray's socket paths under it must stay below the 107-byte Unix limit.
                temp_dir = tempfile.mkdtemp(prefix="rp-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
                _created_temp_dirs.append(temp_dir)
            kwargs.update(
                address="local",
                num_cpus=num_cpus,
                object_store_memory=object_store_memory,
                _temp_dir=temp_dir,
            )
        else:
            kwargs["address"] = ray_address
        ray.init(**kwargs)
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})


def run_app(app, name: str = "replenish", route_prefix: str = "/"):
    """Deploy a bound application and wait until it is running; returns its ingress handle."""
    from ray import serve

    try:
        return serve.run(app, name=name, route_prefix=route_prefix, blocking=False)
    except RuntimeError as exc:
        # Serve's message names only the deployment; add each failed deployment's own error (the replica's
        # traceback tail) so the cause is on the console, not only in Ray's log folder.
        details = []
        try:
            app_status = serve.status().applications.get(name)
            for dep_name, dep in (app_status.deployments if app_status else {}).items():
                if dep.message:
                    details.append(f"{dep_name}: {dep.message.strip().splitlines()[-1][:2000]}")
        except Exception:  # noqa: BLE001 - the original error is what matters
            pass
        raise RuntimeError("; ".join([str(exc), *details])) from None


def shutdown(graceful_s: float = 10.0) -> None:
    """Stop Serve and the Ray instance this process started or joined (safe to call twice).

    Args:
        graceful_s: how long Serve's controller may take to drain replicas before Ray is stopped anyway
            (``serve.shutdown`` alone waits 30 s on a busy 2-core machine).
    """
    import ray
    from ray import serve

    if ray.is_initialized():
        try:
            try:
                from ray.serve.context import _get_global_client  # Serve's own client: it takes a timeout

                client = _get_global_client(raise_if_no_controller_running=False)
                if client is not None:
                    client.shutdown(timeout_s=graceful_s)
                    serve.context._disconnect()
            except (ImportError, AttributeError, TypeError):
                serve.shutdown()
        finally:
            ray.shutdown()
    while _created_temp_dirs:
        shutil.rmtree(_created_temp_dirs.pop(), ignore_errors=True)
