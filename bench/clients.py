"""A client process: several event streams, each timing every event it receives.

    python -m bench.clients --mode evactors|direct --address ADDR --streams N
                            [--filter F ...] [--connections C] --out FILE.json

Each process runs its streams as grpc.aio calls in one event loop, spread over
`--connections` HTTP/2 connections (grpcio shares one connection between channels to
the same target unless told not to: `grpc.use_local_subchannel_pool`). The benchmark
runs K streams in several such processes, so that the clients' CPU is never counted as
the server's.

- `--mode evactors`: `evactors.v1.SystemService/GetSystemEvents` with `--filter`
  strings (`namespace=bench`, `event=start`); latency is receive time minus
  `SystemEvent.timestamp`.
- `--mode direct`: containerd's own `Events/Subscribe` with `--filter` strings in
  containerd's syntax (`namespace=="bench"`); latency is receive time minus the
  `Envelope`'s timestamp. This is the limit any relay can reach.

Both timestamps are containerd's (the envelope's, which evactors passes on), and the
receive time is `time.time_ns()` on the same host, taken as soon as the message is
decoded.

Protocol with the orchestrator: the process prints `ready` once every stream has seen a
`WARMUP_ID` marker (the subscription is live), then counts every other event until the
stream sees `END_ID`, fails, or the orchestrator writes `stop` on stdin (or closes it).
Then it writes the result file: per stream the events received, first and last receive
times, the final status, and every latency in microseconds.

`--idle` opens the streams and reports nothing but `opened`; `cancel` on stdin cancels
every call at once (one RST_STREAM each) and the process prints `cancelled` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc

# The generated messages are evactors' private modules: the benchmark, like the tests,
# speaks both wire protocols itself.
from evactors._generated.containerd.events import task_pb2
from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors._generated.evactors.v1 import system_service_pb2 as pb

from . import workload


class Stream:
    """One call and what it saw."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.latencies: list[int] = []  # ns
        self.first_ns = 0
        self.last_ns = 0
        self.status = "open"

    def summary(self) -> dict[str, Any]:
        return {
            "received": len(self.latencies),
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "status": self.status,
            "latencies_us": [latency // 1000 for latency in self.latencies],
        }


def _open_call(channel: grpc.aio.Channel, mode: str, filters: list[str]) -> Any:
    if mode == "evactors":
        method = channel.unary_stream(
            workload.EVENTS_METHOD,
            request_serializer=pb.GetSystemEventsRequest.SerializeToString,
            response_deserializer=pb.SystemEvent.FromString,
        )
        return method(pb.GetSystemEventsRequest(filters=filters))
    method = channel.unary_stream(
        workload.SUBSCRIBE_METHOD,
        request_serializer=events_pb2.SubscribeRequest.SerializeToString,
        response_deserializer=events_pb2.Envelope.FromString,
    )
    return method(events_pb2.SubscribeRequest(filters=filters))


def _evactors_event(message: pb.SystemEvent) -> tuple[int, str]:
    """(timestamp ns, marker id or "") of an evactors event."""
    cid = message.container_id
    return message.timestamp, cid if cid.startswith("bench-marker-") else ""


def _direct_event(envelope: events_pb2.Envelope) -> tuple[int, str]:
    """(timestamp ns, marker id or "") of a containerd envelope."""
    stamp = envelope.timestamp
    marker = ""
    if envelope.topic == workload.MARKER_TOPIC:
        cid = task_pb2.TaskStart.FromString(envelope.event.value).container_id
        marker = cid if cid.startswith("bench-marker-") else ""
    return stamp.seconds * 1_000_000_000 + stamp.nanos, marker


async def _run_stream(stream: Stream, call: Any, mode: str) -> None:
    """Read one stream until END, an error, or cancellation; time every event."""
    decode = _evactors_event if mode == "evactors" else _direct_event
    latencies = stream.latencies
    try:
        async for message in call:
            now = time.time_ns()
            timestamp, marker = decode(message)
            if marker == workload.WARMUP_ID:
                stream.ready.set()
                continue
            if marker == workload.END_ID:
                stream.status = "end"
                return
            if not stream.first_ns:
                stream.first_ns = now
            stream.last_ns = now
            latencies.append(now - timestamp)
        stream.status = "ok"
    except grpc.RpcError as error:
        stream.status = error.code().name if hasattr(error, "code") else str(error)
    except asyncio.CancelledError:
        if stream.status == "open":
            stream.status = "stopped"
    finally:
        stream.ready.set()  # a failed stream must not hold the others back


def _stdin_lines() -> asyncio.Queue[str]:
    """Lines of stdin as they come ("" once it is closed)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def put(line: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
            loop.call_soon_threadsafe(queue.put_nowait, line)

    def reader() -> None:
        for line in sys.stdin:
            put(line.strip())
        put("")

    # A daemon thread: the process must not wait for stdin to close before it exits.
    threading.Thread(target=reader, daemon=True).start()
    return queue


def _channels(address: str, count: int) -> list[grpc.aio.Channel]:
    target = address if address.startswith("unix:") else f"unix:{address}"
    return [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    channels = _channels(args.address, args.connections)
    streams = [Stream() for _ in range(args.streams)]
    tasks = [
        asyncio.create_task(
            _run_stream(
                stream, _open_call(channels[i % len(channels)], args.mode, args.filter), args.mode
            )
        )
        for i, stream in enumerate(streams)
    ]
    lines = _stdin_lines()
    try:
        await asyncio.gather(*(stream.ready.wait() for stream in streams))
        print("ready", flush=True)
        start = resource.getrusage(resource.RUSAGE_SELF)
        stop = asyncio.create_task(lines.get())
        pending = set(tasks)
        while pending and not stop.done():
            done, _ = await asyncio.wait({stop, *pending}, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
    end = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "streams": [stream.summary() for stream in streams],
        # From "ready" to the end: what the phase cost the client, start-up left out.
        "cpu_s": (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime),
    }


async def hold_idle(args: argparse.Namespace) -> None:
    """Open the streams and keep them open; `cancel` on stdin cancels them all at once."""
    channels = _channels(args.address, args.connections)
    calls = [
        _open_call(channels[i % len(channels)], args.mode, args.filter) for i in range(args.streams)
    ]
    # A call is sent when it is first read from; read each in its own task.
    readers = [asyncio.create_task(_drain(call)) for call in calls]
    print("opened", flush=True)
    lines = _stdin_lines()
    try:
        while (line := await lines.get()) not in {"", "cancel"}:
            pass
        if line == "cancel":
            for call in calls:
                call.cancel()
            print(f"cancelled {time.time_ns()}", flush=True)
            await asyncio.gather(*readers, return_exceptions=True)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for channel in channels:
            await channel.close()


async def _drain(call: Any) -> None:
    with contextlib.suppress(grpc.RpcError, asyncio.CancelledError):
        async for _message in call:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["evactors", "direct"], required=True)
    parser.add_argument("--address", required=True, help="a unix socket path")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--filter", action="append", default=[])
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.idle:
        asyncio.run(hold_idle(args))
        return
    result = asyncio.run(measure(args))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
