"""Many idle streams: what each costs evactors in memory, and how fast they are released.

1. A fresh `evactors serve`; its resident size (`VmRSS`) once it answers.
2. `STREAMS` GetSystemEvents streams from `PROCESSES` client processes (several HTTP/2
   connections each: the server takes at most 100 streams per connection), each
   filtering a namespace that never gets an event, until `stats.subscribers` says all
   are open; `VmRSS` again. The difference over the number of streams is the memory
   one idle stream holds (connections included, shared by 25 streams each).
3. Every process cancels all its calls at once (grpcio sends one RST_STREAM per call);
   the time until `stats.subscribers` is back to 0 is the release time.
4. The same streams again, then every client process is SIGKILLed at once (the
   connections drop); the time until `stats.subscribers` is 0 again.

`stats.subscribers` comes from GetSystemInfo, which also asks containerd a few
questions, so a poll takes a few milliseconds: the release times are accurate to about
one poll (its median duration is reported as `poll_ms`).
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

from . import measure, workload
from .testbed import Evactors, Process, Testbed

STREAMS = 1000
PROCESSES = 10
CONNECTIONS_PER_PROCESS = 4
OPEN_TIMEOUT = 120.0


def _open_streams(bed: Testbed, evactors: Evactors, streams: int) -> tuple[list[Process], float]:
    """Open `streams` idle streams; returns the processes and how long it took (s)."""
    start = time.monotonic()
    processes = []
    per_process = [
        streams // PROCESSES + (1 if i < streams % PROCESSES else 0) for i in range(PROCESSES)
    ]
    for count in per_process:
        processes.append(
            bed.start(
                "bench.clients",
                "--idle",
                "--mode",
                "evactors",
                "--address",
                str(evactors.socket),
                "--streams",
                str(count),
                "--connections",
                str(CONNECTIONS_PER_PROCESS),
                "--filter",
                f"namespace={workload.QUIET_NAMESPACE}",
                log="idle-clients.log",
                stdin=True,
            )
        )
    deadline = time.monotonic() + OPEN_TIMEOUT
    for process in processes:
        process.expect("opened", deadline)
    evactors.wait_subscribers(streams, timeout=max(1.0, deadline - time.monotonic()))
    return processes, time.monotonic() - start


def _poll_ms(evactors: Evactors) -> float:
    durations = []
    for _ in range(20):
        start = time.perf_counter()
        evactors.stats()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations) * 1e3


def run_idle(bed: Testbed, *, run: int, streams: int = STREAMS) -> dict[str, Any]:
    """Measure memory per idle stream and the release of `streams` streams at once."""
    evactors = bed.start_evactors(f"run{run}-idle")
    try:
        poll_ms = _poll_ms(evactors)  # also warms the server's code paths up
        time.sleep(0.5)
        rss_before = measure.memory_kib(evactors.pid)["VmRSS"]

        processes, open_s = _open_streams(bed, evactors, streams)
        time.sleep(0.5)
        rss_open = measure.memory_kib(evactors.pid)["VmRSS"]
        start = time.monotonic()
        for process in processes:
            process.write("cancel")
        evactors.wait_subscribers(0, timeout=60)
        cancel_s = time.monotonic() - start
        for process in processes:
            process.wait(10)
            bed.forget(process)
        rss_after_cancel = measure.memory_kib(evactors.pid)["VmRSS"]

        processes, _ = _open_streams(bed, evactors, streams)
        start = time.monotonic()
        for process in processes:
            os.kill(process.pid, signal.SIGKILL)
        evactors.wait_subscribers(0, timeout=60)
        kill_s = time.monotonic() - start
        for process in processes:
            bed.forget(process)
        peak = measure.memory_kib(evactors.pid)["VmHWM"]
    finally:
        bed.stop_evactors(evactors)
    return {
        "streams": streams,
        "rss_before_mb": rss_before / 1024,
        "rss_open_mb": rss_open / 1024,
        "rss_after_cancel_mb": rss_after_cancel / 1024,
        "peak_rss_mb": peak / 1024,
        "kib_per_stream": (rss_open - rss_before) / streams,
        "open_s": open_s,
        "cancel_release_s": cancel_s,
        "cancel_release_us_per_stream": cancel_s / streams * 1e6,
        "kill_release_s": kill_s,
        "kill_release_us_per_stream": kill_s / streams * 1e6,
        "poll_ms": poll_ms,
    }
