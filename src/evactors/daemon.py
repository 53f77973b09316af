"""`evactors serve`: the event pipeline and the gRPC server in one trio run.

The task tree:

    run_daemon ── daemon nursery
       ├── EventPipeline.run       subscriber, converter, one filter actor per stream
       ├── _stop_on_signals        SIGINT/SIGTERM → Server.shutdown (twice: stop now)
       └── _serve                  Server.serve: listeners, connections, calls; when it
                                   returns, the daemon nursery is cancelled

Shutdown, whatever starts it: the server ends every open call with UNAVAILABLE, closes
its listeners and removes its socket file; then the daemon nursery is cancelled, which
stops the pipeline (its filter actors first).
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Sequence
from typing import Final

import attrs
import trio

from ._version import __version__
from .containerd import open_containerd
from .events.pipeline import DEFAULT_CLIENT_BACKLOG, DEFAULT_HISTORY, EventPipeline
from .grpc import Address, Server
from .rpc import SystemService
from .system.nerdctl import DEFAULT_NERDCTL_PATHS, NerdctlPaths

LOGGER = logging.getLogger(__name__)

# How long shutdown waits for open calls to end: well inside the 5 s a supervisor
# gives before SIGKILL, leaving time for the pipeline to stop.
SHUTDOWN_TIMEOUT: Final = 3.0


@attrs.frozen
class DaemonConfig:
    """What `evactors serve` was asked for.

    Attributes:
      containerd_address: containerd's socket (`unix://` or a bare path).
      listen: Where to serve gRPC.
      history: Events retained for replay.
      client_backlog: Events queued for one client before it is cut off.
      nerdctl_paths: Where nerdctl keeps its networks and volumes (for prune).
    """

    containerd_address: str
    listen: Sequence[Address]
    history: int = DEFAULT_HISTORY
    client_backlog: int = DEFAULT_CLIENT_BACKLOG
    nerdctl_paths: NerdctlPaths = DEFAULT_NERDCTL_PATHS


@attrs.frozen
class RunningDaemon:
    """What `run_daemon` hands its starter: where it listens, and its parts."""

    addresses: list[Address]
    server: Server
    pipeline: EventPipeline


async def run_daemon(
    config: DaemonConfig,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[RunningDaemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve evactors until SIGINT/SIGTERM (or `server.shutdown()`), then stop cleanly.

    Args:
      config: containerd's address, the listen addresses, history and backlog sizes.
      handle_signals: Stop gracefully on SIGINT/SIGTERM (main thread only); a second
        signal stops at once.
      task_status: Given a `RunningDaemon` once every listener accepts calls.

    Raises:
      OSError: a listen address cannot be bound (a live server on the unix socket).
    """
    pipeline = EventPipeline(history_size=config.history, client_backlog=config.client_backlog)
    connect = functools.partial(open_containerd, config.containerd_address)
    service = SystemService(pipeline, connect, nerdctl_paths=config.nerdctl_paths)
    server = Server(service, shutdown_timeout=SHUTDOWN_TIMEOUT)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run, connect)
        if handle_signals:
            await nursery.start(_stop_on_signals, server, nursery.cancel_scope)
        addresses = await nursery.start(_serve, server, config.listen, nursery.cancel_scope)
        LOGGER.info(
            "evactors %s listening on %s (containerd: %s)",
            __version__,
            ", ".join(map(str, addresses)),
            config.containerd_address,
        )
        task_status.started(RunningDaemon(addresses, server, pipeline))
    LOGGER.info("evactors stopped")


async def _serve(
    server: Server,
    listen: Sequence[Address],
    daemon_scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await server.serve(listen, task_status=task_status)
    # The server has ended its calls and closed its listeners: the pipeline goes next.
    daemon_scope.cancel(reason="server stopped")


async def _stop_on_signals(
    server: Server,
    daemon_scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        received = aiter(signals)
        signum = await anext(received)
        LOGGER.info("%s: shutting down", signal.Signals(signum).name)
        server.shutdown("the server is shutting down")
        signum = await anext(received)
        LOGGER.warning("%s again: stopping at once", signal.Signals(signum).name)
        daemon_scope.cancel(reason="second signal")
