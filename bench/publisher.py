"""The publisher process: puts the workload into containerd through Events/Publish.

    python -m bench.publisher --address SOCK --count N --rate R [--via raw|grpcio]
                              --out FILE.json

Open loop: event `i` is due at `start + i / rate`, whatever happened to the events
before it, so a slow relay cannot slow the publisher down (a closed loop would hide
latency by publishing less). Due events go out as concurrent calls, at most
`--inflight` at a time. `--rate 0` is a burst: every event as fast as that goes.

Two ways to make the calls, both measured (see docs/benchmarks.md):

- `raw` (default): `rawgrpc.UnaryCaller`, the requests framed in advance on one HTTP/2
  connection; a few us of CPU per call, so containerd, not the publisher, limits a
  burst, and a steady rate costs the measured processes almost no CPU;
- `grpcio`: grpc.aio over 4 connections (grpcio's fastest configuration here: 16 calls
  in flight); 150-200 us of CPU per call.

The requests are serialized before the clock starts. After the last call has returned,
the `END_ID` marker is published, so it reaches every subscriber after every measured
event. The result file says what was achieved: how many events went out, between which
times (Unix ns, the clock the clients stamp receipts with), the achieved rate, how late
the latest call started against its schedule, and the publisher's own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

from . import workload
from .rawgrpc import UnaryCaller

GRPCIO_CONNECTIONS = 4
TICK = 0.001  # seconds


def publish_raw(address: str, requests: list[bytes], rate: float, inflight: int) -> dict[str, Any]:
    """Publish `requests` at `rate` a second (0: a burst), then END, on one connection."""
    caller = UnaryCaller(
        address, workload.PUBLISH_METHOD, workload.PUBLISH_METADATA, limit=inflight
    )
    try:
        _call_all(caller, [workload.marker(workload.WARMUP_ID)])  # connected and settled
        count = len(requests)
        sent = 0
        max_lag = 0.0
        start_ns = time.time_ns()
        start = time.perf_counter()
        while sent < count:
            now = time.perf_counter()
            due = count if rate == 0 else min(count, int((now - start) * rate) + 1)
            if sent < due and caller.capacity():
                if rate:
                    max_lag = max(max_lag, now - (start + sent / rate))
                sent += caller.send(requests[sent:due])
            if sent < due:
                caller.poll(0.01)  # at the stream limit: wait for calls to finish
            elif sent < count:
                # Sleep at least a tick: at thousands of events a second, waking for
                # each one would cost more CPU than the calls themselves.
                caller.poll(max(TICK, start + sent / rate - time.perf_counter()))
        while caller.outstanding:
            caller.poll(1.0)
        end = time.perf_counter()
        end_ns = time.time_ns()
        errors = caller.errors
        _call_all(caller, [workload.marker(workload.END_ID)])
    finally:
        caller.close()
    return _result(
        count,
        errors=errors,
        rate=rate,
        start_ns=start_ns,
        end_ns=end_ns,
        elapsed=end - start,
        max_lag=max_lag,
    )


def _call_all(caller: UnaryCaller, requests: list[bytes]) -> None:
    while requests:
        requests = requests[caller.send(requests) :]
        caller.poll(0.01)
    while caller.outstanding:
        caller.poll(1.0)


async def publish_grpcio(
    address: str, requests: list[bytes], rate: float, inflight: int
) -> dict[str, Any]:
    """The same with grpc.aio: due calls as tasks over several connections."""
    import grpc

    channels = [
        grpc.aio.insecure_channel(
            f"unix:{address}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(GRPCIO_CONNECTIONS)
    ]
    calls = [
        channel.unary_unary(
            workload.PUBLISH_METHOD, request_serializer=None, response_deserializer=None
        )
        for channel in channels
    ]
    errors = 0
    try:
        for call in calls:  # connect every channel before the clock starts
            await call(workload.marker(workload.WARMUP_ID), metadata=workload.PUBLISH_METADATA)
        slots = asyncio.Semaphore(inflight)
        tasks: set[asyncio.Task[None]] = set()

        async def one(n: int, request: bytes) -> None:
            nonlocal errors
            try:
                await calls[n % len(calls)](request, metadata=workload.PUBLISH_METADATA)
            except grpc.RpcError:
                errors += 1
            finally:
                slots.release()

        max_lag = 0.0
        start_ns = time.time_ns()
        start = time.perf_counter()
        for n, request in enumerate(requests):
            if rate > 0:
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    max_lag = max(max_lag, -delay)
            await slots.acquire()
            task = asyncio.create_task(one(n, request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        end = time.perf_counter()
        end_ns = time.time_ns()
        await calls[0](workload.marker(workload.END_ID), metadata=workload.PUBLISH_METADATA)
    finally:
        for channel in channels:
            await channel.close()
    return _result(
        len(requests),
        errors=errors,
        rate=rate,
        start_ns=start_ns,
        end_ns=end_ns,
        elapsed=end - start,
        max_lag=max_lag,
    )


def _result(
    count: int,
    *,
    errors: int,
    rate: float,
    start_ns: int,
    end_ns: int,
    elapsed: float,
    max_lag: float,
) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "published": count - errors,
        "errors": errors,
        "target_rate": rate,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "achieved_rate": count / elapsed if elapsed > 0 else 0.0,
        "max_lag_ms": max_lag * 1e3,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="containerd's socket")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0, help="events/s; 0 = a burst")
    parser.add_argument("--via", choices=["raw", "grpcio"], default="raw")
    parser.add_argument("--inflight", type=int, help="calls in flight at most")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    requests = [request for _topic, request in workload.workload(args.count)]
    if args.via == "raw":
        result = publish_raw(args.address, requests, args.rate, args.inflight or 256)
    else:
        result = asyncio.run(publish_grpcio(args.address, requests, args.rate, args.inflight or 16))
    result["via"] = args.via
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
