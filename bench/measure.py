"""What the kernel says a process used: CPU seconds and memory, from /proc.

- CPU: `utime + stime` of `/proc/PID/stat` (all threads of the process, in clock ticks),
  read before and after a phase; the difference is what the process spent on it.
- The whole machine: the busy time of every core (`/proc/stat`), so that what other
  processes took during a phase is known (the difference from the benchmark's own).
- Memory: `VmRSS` (resident now) and `VmHWM` (the peak resident size over the
  process's whole life) of `/proc/PID/status`, in KiB. A peak is per process lifetime,
  so the benchmark starts a fresh evactors for every scenario.

And the numbers that summarize a list of latencies.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    # Fields after the parenthesized command (which may hold spaces): state is [0],
    # utime [11], stime [12] (fields 14 and 15 of proc(5)).
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (`/proc/stat`: user, nice, system,
    irq, softirq and steal; not idle or iowait)."""
    fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """`VmRSS` and `VmHWM` of the process, KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            found[key] = int(value.split()[0])
    return found


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted sequence (0 if empty)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are not None (None if there are none)."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None
