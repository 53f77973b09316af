"""The streaming scenarios, and one phase of one: clients, publisher, measurements.

A scenario (e.g. "steady 2,000/s, K=10") runs twice in a row with the same publisher
schedule: first the K clients subscribe *directly* to containerd's Events/Subscribe
(the limit any relay can reach), then, with a fresh `evactors serve`, to evactors'
GetSystemEvents. evactors does not run during the direct phase, so it takes no CPU
from it.

One phase:

1. start the client processes (K streams, `STREAMS_PER_PROCESS` per process);
2. publish `WARMUP_ID` markers until every stream has seen one;
3. read evactors' and containerd's CPU time;
4. run the publisher (open loop at the scenario's rate, or a burst) and wait until
   every stream has seen `END_ID` (or failed, or the phase times out);
5. read the CPU times again and evactors' peak RSS, and collect the clients' files.

What a phase reports (`summarize`): events expected and received per stream
(`undelivered` is the shortfall), delivered events/s per stream (events received
divided by the time from the first publish to that stream's last event, so a relay
that lags pays for it) and in total, latency p50/p99/max over every event of every
stream, the CPU seconds of evactors, containerd, the clients, the publisher and of
whatever else ran on the machine meanwhile, evactors' CPU us per delivered event, its
peak RSS, the publisher's achieved rate, and how the streams ended.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import measure, workload
from .testbed import Evactors, Process, Testbed

STREAMS_PER_PROCESS = 25
WARMUP_TIMEOUT = 60.0
WARMUP_INTERVAL = 0.02


@dataclass(frozen=True)
class Scenario:
    """One row of the table.

    Attributes:
      name: Short id (file names, JSON keys).
      title: As the table shows it.
      streams: K, the number of client streams.
      rate: Events published per second; 0 for a burst.
      burst: Events in a burst (rate 0).
      evactors_filters: The GetSystemEvents filters.
      direct_filters: The same selection in containerd's filter syntax (OR-ed strings,
        `,` is AND inside one).
      topics: The topics the filter selects (to count what each stream should get);
        None: all.
    """

    name: str
    title: str
    streams: int
    rate: float = 0
    burst: int = 0
    evactors_filters: tuple[str, ...] = (f"namespace={workload.NAMESPACE}",)
    direct_filters: tuple[str, ...] = (f'namespace=="{workload.NAMESPACE}"',)
    topics: frozenset[str] | None = None

    def count(self, duration: float) -> int:
        """Events the publisher sends in this scenario."""
        return self.burst if self.rate == 0 else round(self.rate * duration)


START_FILTER = Scenario(
    name="filter-2000-k10",
    title="2,000/s, K=10, filter 1 in 5",
    streams=10,
    rate=2000,
    evactors_filters=(f"namespace={workload.NAMESPACE}", "event=start"),
    direct_filters=(f'namespace=="{workload.NAMESPACE}",topic=="/tasks/start"',),
    topics=frozenset({"/tasks/start"}),
)

SCENARIOS = (
    Scenario("steady-2000-k1", "steady 2,000/s, K=1", streams=1, rate=2000),
    Scenario("steady-2000-k10", "steady 2,000/s, K=10", streams=10, rate=2000),
    Scenario("steady-200-k100", "steady 200/s, K=100", streams=100, rate=200),
    Scenario("burst-20000-k1", "burst of 20,000, K=1", streams=1, burst=20_000),
    Scenario("burst-20000-k10", "burst of 20,000, K=10", streams=10, burst=20_000),
    START_FILTER,
)


@dataclass
class PhaseResult:
    """The raw outcome of one phase (before `summarize`)."""

    mode: str
    expected_per_stream: int
    publisher: dict[str, Any]
    streams: list[dict[str, Any]] = field(default_factory=list)
    clients_cpu_s: float = 0.0
    containerd_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    evactors_cpu_s: float | None = None
    evactors_peak_rss_kib: int | None = None


def _split(total: int, per_process: int) -> list[int]:
    """`total` streams over ceil(total / per_process) processes, as evenly as possible."""
    processes = max(1, math.ceil(total / per_process))
    return [total // processes + (1 if i < total % processes else 0) for i in range(processes)]


def run_phase(
    bed: Testbed,
    scenario: Scenario,
    *,
    mode: str,
    duration: float,
    evactors: Evactors | None,
    tag: str,
    results: Path,
) -> PhaseResult:
    """Run one phase of `scenario` against containerd (`mode="direct"`) or `evactors`."""
    if mode == "direct":
        address, filters = bed.containerd_address, scenario.direct_filters
    else:
        assert evactors is not None
        address, filters = str(evactors.socket), scenario.evactors_filters
    count = scenario.count(duration)
    clients: list[tuple[Process, Path]] = []
    try:
        for i, streams in enumerate(_split(scenario.streams, STREAMS_PER_PROCESS)):
            out = results / f"{tag}-{mode}-clients-{i}.json"
            args = ["--mode", mode, "--address", address, "--streams", str(streams)]
            args += [arg for f in filters for arg in ("--filter", f)]
            process = bed.start(
                "bench.clients", *args, "--out", str(out), log="clients.log", stdin=True
            )
            clients.append((process, out))
        _warm_up(bed, [process for process, _ in clients])

        busy = measure.machine_busy_seconds()
        containerd_cpu = measure.cpu_seconds(bed.containerd_pid)
        evactors_cpu = measure.cpu_seconds(evactors.pid) if evactors else None
        publisher_out = results / f"{tag}-{mode}-publisher.json"
        publisher = bed.start(
            "bench.publisher",
            "--address",
            bed.containerd_address,
            "--count",
            str(count),
            "--rate",
            str(scenario.rate),
            "--out",
            str(publisher_out),
            log="publisher.log",
        )
        if publisher.wait(timeout=duration * 4 + 60) != 0:
            raise RuntimeError(f"the publisher failed; see {publisher.log}")
        bed.forget(publisher)
        # Every stream ends at END_ID; a relay that lags gets time to catch up, but
        # not forever: `stop` ends the streams that are still open.
        deadline = time.monotonic() + max(30.0, duration * 3)
        for process, _ in clients:
            if process.wait(max(0.0, deadline - time.monotonic())) is None:
                process.write("stop")
        for process, _ in clients:
            if process.wait(30) is None:
                raise RuntimeError(f"a client process did not stop; see {process.log}")

        result = PhaseResult(
            mode=mode,
            expected_per_stream=workload.matching(count, scenario.topics),
            publisher=json.loads(publisher_out.read_text()),
            containerd_cpu_s=measure.cpu_seconds(bed.containerd_pid) - containerd_cpu,
            machine_busy_s=measure.machine_busy_seconds() - busy,
        )
        if evactors is not None and evactors_cpu is not None:
            result.evactors_cpu_s = measure.cpu_seconds(evactors.pid) - evactors_cpu
            result.evactors_peak_rss_kib = measure.memory_kib(evactors.pid)["VmHWM"]
        for _, out in clients:
            data = json.loads(out.read_text())
            out.unlink()
            result.streams.extend(data["streams"])
            result.clients_cpu_s += data["cpu_s"]
        publisher_out.unlink()
        return result
    finally:
        for process, _ in clients:
            bed.forget(process)


def _warm_up(bed: Testbed, clients: list[Process]) -> None:
    """Publish warm-up markers until every client process says all its streams saw one."""
    deadline = time.monotonic() + WARMUP_TIMEOUT
    waiting = list(clients)
    while waiting:
        bed.publish_marker(workload.WARMUP_ID)
        time.sleep(WARMUP_INTERVAL)
        for process in list(waiting):
            if not process.lines.empty():
                process.expect("ready", deadline)
                waiting.remove(process)
            elif process.popen.poll() is not None:
                raise RuntimeError(f"a client process exited early; see {process.log}")
        if time.monotonic() > deadline:
            raise RuntimeError("client streams did not come up in time")


def summarize(phase: PhaseResult) -> dict[str, Any]:
    """The figures of one phase (see the module docstring)."""
    streams = phase.streams
    start_ns = phase.publisher["start_ns"]
    received = [s["received"] for s in streams]
    delivered = sum(received)
    per_stream_rates = [
        s["received"] / ((s["last_ns"] - start_ns) / 1e9) if s["last_ns"] > start_ns else 0.0
        for s in streams
    ]
    last_ns = max((s["last_ns"] for s in streams), default=0)
    latencies = sorted(latency for s in streams for latency in s["latencies_us"])
    own = phase.containerd_cpu_s + phase.clients_cpu_s + phase.publisher["cpu_s"]
    own += phase.evactors_cpu_s or 0.0
    figures: dict[str, Any] = {
        "streams": len(streams),
        "published": phase.publisher["published"],
        "publish_rate": phase.publisher["achieved_rate"],
        "publish_max_lag_ms": phase.publisher["max_lag_ms"],
        "expected_per_stream": phase.expected_per_stream,
        "delivered": delivered,
        "undelivered": sum(max(0, phase.expected_per_stream - n) for n in received),
        "rate_per_stream": measure.median(per_stream_rates),
        "rate_total": delivered / ((last_ns - start_ns) / 1e9) if last_ns > start_ns else 0.0,
        "p50_ms": measure.percentile(latencies, 0.50) / 1e3,
        "p99_ms": measure.percentile(latencies, 0.99) / 1e3,
        "max_ms": (latencies[-1] / 1e3) if latencies else 0.0,
        "containerd_cpu_s": phase.containerd_cpu_s,
        "clients_cpu_s": phase.clients_cpu_s,
        "publisher_cpu_s": phase.publisher["cpu_s"],
        # Busy time of the machine that none of the benchmark's processes used (other
        # work on the machine, the kernel's own threads; never negative in principle,
        # but the clients' and the publisher's windows are a little off the phase's).
        "others_cpu_s": max(0.0, phase.machine_busy_s - own),
        "stream_ends": dict(Counter(s["status"] for s in streams)),
    }
    if phase.evactors_cpu_s is not None:
        figures["evactors_cpu_s"] = phase.evactors_cpu_s
        figures["evactors_cpu_us_per_event"] = (
            phase.evactors_cpu_s / delivered * 1e6 if delivered else None
        )
        figures["evactors_peak_rss_mb"] = (phase.evactors_peak_rss_kib or 0) / 1024
    return figures


def run_scenario(
    bed: Testbed, scenario: Scenario, *, duration: float, run: int, results: Path
) -> dict[str, dict[str, Any]]:
    """Both phases of a scenario: direct, then a fresh evactors."""
    tag = f"run{run}-{scenario.name}"
    direct = run_phase(
        bed, scenario, mode="direct", duration=duration, evactors=None, tag=tag, results=results
    )
    evactors = bed.start_evactors(tag)
    try:
        relayed = run_phase(
            bed,
            scenario,
            mode="evactors",
            duration=duration,
            evactors=evactors,
            tag=tag,
            results=results,
        )
    finally:
        bed.stop_evactors(evactors)
    return {"direct": summarize(direct), "evactors": summarize(relayed)}
