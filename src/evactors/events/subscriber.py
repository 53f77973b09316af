"""The subscriber actor: the service's one containerd subscription, kept alive."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, NoReturn

import attrs
import trio

from evactors.containerd import ContainerdClient, ContainerdError, Envelope, EventSubscription

from .converter import EventsMissed

LOGGER = logging.getLogger(__name__)

# Re-subscribing after a failure waits this long, doubling each time up to the cap;
# a subscription that worked resets it. Every containerd failure is retried: the
# service's job is to be subscribed whenever containerd is there.
RECONNECT_BACKOFF_INITIAL: Final = 0.1
RECONNECT_BACKOFF_MAX: Final = 5.0
RETRYABLE: Final = (ContainerdError,)

ConnectContainerd = Callable[[], AbstractAsyncContextManager[ContainerdClient]]


@attrs.define
class ContainerdLink:
    """The subscriber's current containerd client, for the other actors to call with.

    `client` is None while containerd is unreachable.
    """

    client: ContainerdClient | None = None
    subscriptions: int = 0  # successful (re-)subscriptions so far

    @property
    def connected(self) -> bool:
        return self.client is not None


async def run_subscriber(
    connect: ConnectContainerd,
    sink: trio.MemorySendChannel[Envelope | EventsMissed],
    link: ContainerdLink,
    *,
    wall_clock: Callable[[], int] = time.time_ns,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Subscribe to all of containerd's events and send each envelope to `sink`.

    Starts at once, whether or not containerd answers. When the subscription fails
    (containerd unreachable, killed, restarted), it re-subscribes with capped
    exponential backoff; once back after a failure, it sends an `EventsMissed` notice
    before the first new envelope.

    Args:
      connect: Opens a containerd client (e.g. `functools.partial(open_containerd, path)`).
      sink: Where envelopes go; this actor owns the send end and closes it when it stops.
        It is bounded: a slow converter slows the read from containerd, and containerd
        queues for us, instead of our memory growing.
      link: Updated with the current client (and None while containerd is away).
      wall_clock: Unix-ns clock for notices (injectable for tests).
    """
    delay = RECONNECT_BACKOFF_INITIAL
    down_since: int | None = None
    reason = ""
    with sink:
        task_status.started()
        while True:
            try:
                async with connect() as client, client.subscribe() as events:
                    missed = None
                    if down_since is not None:
                        missed = EventsMissed(wall_clock(), down_since, reason)
                    down_since, delay = None, RECONNECT_BACKOFF_INITIAL
                    await _relay(client, events, missed, sink, link)
                reason = "containerd ended the subscription"
            except RETRYABLE as error:
                reason = str(error)
            finally:
                link.client = None
            if down_since is None:
                # One warning an outage: retries while containerd stays away are routine.
                down_since = wall_clock()
                LOGGER.warning(
                    "containerd subscription down (%s); retrying, every %.0f s at most",
                    reason,
                    RECONNECT_BACKOFF_MAX,
                )
            else:
                LOGGER.debug("containerd still away (%s); retrying in %.1f s", reason, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, RECONNECT_BACKOFF_MAX)


async def _relay(
    client: ContainerdClient,
    events: EventSubscription,
    missed: EventsMissed | None,
    sink: trio.MemorySendChannel[Envelope | EventsMissed],
    link: ContainerdLink,
) -> None:
    """Forward one live subscription's envelopes, after the notice if one is due."""
    link.client = client
    link.subscriptions += 1
    LOGGER.info("subscribed to containerd events at %s", client.address)
    if missed is not None:
        await sink.send(missed)
    async for envelope in events:
        try:
            sink.send_nowait(envelope)  # room: no trip through the scheduler
        except trio.WouldBlock:
            await sink.send(envelope)  # the converter is behind: wait for it
