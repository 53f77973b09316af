"""Where evactors' CPU goes: py-spy samples of `evactors serve` during one scenario.

After the measured runs (a sampling profiler perturbs what it measures, so no figure
of the table comes from a profiled run), one evactors phase of a scenario runs under
`py-spy record --format raw` (collapsed stacks; idle samples are left
out, so the samples are where the process spent CPU). The summary:

- `stages`: the share of samples in each coarse stage of the pipeline (`_STAGE_MARKERS`);
- `by_package`: the share of samples whose innermost frame is in each package (trio,
  h2, purerpc, protobuf, evactors' own packages, the standard library): where the
  instructions run;
- `evactors_inclusive`: evactors' functions by the share of samples they are on the
  stack for: which stage of the pipeline the time is spent under;
- `top_self`: the functions with the most samples of their own.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .scenarios import Scenario, run_phase
from .testbed import Testbed

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_PACKAGES = (  # (marker in "/" + the frame's file, package)
    ("/evactors/grpc/", "evactors.grpc"),
    ("/evactors/events/", "evactors.events"),
    ("/evactors/containerd/", "evactors.containerd"),
    ("/evactors/rpc/", "evactors.rpc"),
    ("/evactors/_generated/", "evactors._generated"),
    ("/evactors/", "evactors (other)"),
    ("/purerpc/", "purerpc"),
    ("/h2/", "h2"),
    ("/hpack/", "hpack"),
    ("/hyperframe/", "hyperframe"),
    ("/trio/", "trio"),
    ("/outcome/", "trio"),
    ("/google/protobuf/", "protobuf"),
    ("/anyio/", "anyio"),
    ("/attr/", "attrs"),
    ("<attrs generated", "attrs"),
)


# Coarse stages of evactors' work, by a function on the sample's stack; the first match
# wins. The HTTP/2 reading and writing run in each connection's own reader and writer
# tasks, so they cannot be told apart by call (containerd's stream and lookups, the
# clients' streams): they are stages of their own.
_STAGE_MARKERS = (
    ("container lookups (Containers.Get, the call itself)", ("ContainerDirectory.lookup",)),
    ("HTTP/2 writing (every connection's writer, socket writes)", ("Writer.run",)),
    ("HTTP/2 reading (every connection's reader, socket reads)", ("_read_until_closed",)),
    ("subscriber (containerd's stream to the converter)", ("run_subscriber",)),
    ("converter (decode, facts, normalize, emit to the hub)", ("run_converter",)),
    ("filter actors (filter, render, hand over)", ("run_client_stream",)),
    ("stream send (serialize, queue for the writer)", ("send_messages", "_send (")),
    ("RPC handlers (relay, event_message)", ("GetSystemEvents", "_answer_stream")),
    ("trio scheduler and I/O polling", ("unrolled_run", "get_events")),
)


# Innermost frames py-spy reports as active although the thread only waits: trio's idle
# thread-cache worker (a timed lock wait).
_IDLE_FRAMES = frozenset({"WorkerThread._work"})


def py_spy() -> str | None:
    """The py-spy executable (the bench extra installs it in the virtualenv)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


# evactors' packages whose functions are listed by inclusive share (not the CLI and
# daemon frames at the bottom of every stack).
_STAGES = ("/evactors/grpc/", "/evactors/events/", "/evactors/containerd/", "/evactors/rpc/")


def _package(file: str) -> str:
    for marker, name in _PACKAGES:
        if marker in "/" + file:
            return name
    return "python / stdlib" if file else "native"


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match:
            frames.append((match["function"], match["file"]))
        else:
            frames.append((frame, ""))
    return frames


def summarize(raw: str, top: int = 15) -> dict[str, Any]:
    """Shares (%) of samples by package, evactors function (inclusive), function (self)."""
    by_package: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        function, file = frames[-1]
        if function in _IDLE_FRAMES:
            continue
        total += count
        by_package[_package(file)] += count
        stages[_stage(stack)] += count
        own[f"{function} ({_short(file)})"] += count
        seen = set()
        for function, file in frames:
            if any(stage in "/" + file for stage in _STAGES):
                key = f"{function} ({_short(file)})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count

    def shares(counter: Counter[str], limit: int | None = None) -> list[tuple[str, float]]:
        return [(key, 100 * n / total) for key, n in counter.most_common(limit)]

    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "stages": shares(stages),
        "by_package": shares(by_package),
        "evactors_inclusive": shares(inclusive, top),
        "top_self": shares(own, top),
    }


def _stage(stack: str) -> str:
    for stage, markers in _STAGE_MARKERS:
        if any(marker in stack for marker in markers):
            return stage
    return "other"


def _short(file: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def profile(bed: Testbed, scenario: Scenario, *, duration: float, results: Path) -> dict[str, Any]:
    """One evactors phase of `scenario` under py-spy; the summary of its samples."""
    spy = py_spy()
    if spy is None:
        return {"error": "py-spy is not installed (pip install -e '.[bench]')"}
    evactors = bed.start_evactors(f"profile-{scenario.name}")
    output = results / f"profile-{scenario.name}.txt"
    try:
        recorder = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(evactors.pid),
                "--format",
                "raw",
                "--output",
                str(output),
                "--rate",
                "200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(results / "py-spy.log").open("ab"),
        )
        try:
            run_phase(
                bed,
                scenario,
                mode="evactors",
                duration=duration,
                evactors=evactors,
                tag=f"profile-{scenario.name}",
                results=results,
            )
        finally:
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
    finally:
        bed.stop_evactors(evactors)
    if not output.exists():
        return {"error": f"py-spy wrote nothing; see {results / 'py-spy.log'}"}
    summary = summarize(output.read_text(encoding="utf-8"))
    summary["scenario"] = scenario.title
    summary["raw"] = output.name
    return summary
