"""Taking from a channel in batches: what the actors do when events queue up."""

from __future__ import annotations

from typing import TypeVar

import trio

T = TypeVar("T")


async def receive_batch(channel: trio.MemoryReceiveChannel[T], limit: int) -> list[T]:
    """The next item (waiting for it), and up to `limit - 1` more already queued.

    One trip through the scheduler for a whole batch, instead of one per item: under
    load every hop between actors would otherwise cost a scheduling round per event.

    Raises:
      trio.EndOfChannel: the channel is closed and nothing is queued.
    """
    batch = [await channel.receive()]
    while len(batch) < limit:
        try:
            batch.append(channel.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return batch
