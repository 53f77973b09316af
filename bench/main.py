"""The benchmark of issue 5, end to end: `bash bench/run [--quick]` runs this.

    .venv/bin/python -m bench.main [--quick] [--runs N] [--duration S] ...

For each of `--runs` runs: every streaming scenario (`bench.scenarios`: direct, then
evactors) and the idle-stream measurement (`bench.idle`); then the micro-benchmarks
(`bench.micro`, in a process of their own) and py-spy profiles of evactors phases
(`bench.profile`). Medians over the runs go to `docs/benchmarks.md` and
`docs/benchmarks.png` (`bench.report`); the raw figures of every run, the logs and the
profile's stacks to `bench/results/` (not committed). A `--quick` run (one run, short
phases) writes its report to `bench/results/` instead, so docs/ only ever shows full
runs.

Needs root (for the private containerd). Every process it starts is stopped on the way
out, on errors and Ctrl-C (SIGINT) or SIGTERM included.
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from evactors.testing import containerd_available

from . import idle, machine, profile, report
from .scenarios import SCENARIOS, Scenario, run_scenario
from .testbed import REPO, Testbed

RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs"
# Runs per scenario: on two shared cores one run in several is disturbed (a tail two to
# four times the others'), so the median of five is steadier than of three.
DEFAULT_RUNS = 5
# The scenarios profiled after the runs: one client (what each event costs before any
# delivery) and ten (the CPU-per-event target).
PROFILED = ("steady-2000-k1", "steady-2000-k10")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bash bench/run",
        description="evactors' end-to-end benchmark against containerd's own delivery.",
    )
    parser.add_argument("--quick", action="store_true", help="1 run, short phases (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs to take medians over (default 5)")
    parser.add_argument("--duration", type=float, help="seconds per steady phase (default 5)")
    parser.add_argument("--burst", type=int, default=20_000, help="events in a burst")
    parser.add_argument(
        "--scenarios",
        help="comma-separated names to run (default all: "
        + ", ".join(s.name for s in SCENARIOS)
        + ")",
    )
    parser.add_argument(
        "--idle-streams", type=int, default=idle.STREAMS, help="streams of the idle test"
    )
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-stream test")
    parser.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="RESULTS.json",
        help="only regenerate the report from a results file",
    )
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else DEFAULT_RUNS)
    args.duration = args.duration or (1.5 if args.quick else 5.0)
    return args


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    chosen = [
        replace(s, burst=args.burst, title=f"burst of {args.burst:,}, K={s.streams}")
        if s.burst
        else s
        for s in SCENARIOS
    ]
    if args.scenarios:
        names = set(args.scenarios.split(","))
        unknown = names - {s.name for s in chosen}
        if unknown:
            sys.exit(f"unknown scenarios: {', '.join(sorted(unknown))}")
        chosen = [s for s in chosen if s.name in names]
    return chosen


def _log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM unwind as Ctrl-C does, so that every `finally` runs and nothing
    is left behind (SIGINT explicitly: a shell starts background jobs with it ignored)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _brief(name: str, result: dict[str, dict[str, Any]]) -> str:
    e, d = result["evactors"], result["direct"]
    return (
        f"{name}: evactors p50 {report.fmt(e['p50_ms'])} ms p99 {report.fmt(e['p99_ms'])} ms "
        f"{report.fmt(e['rate_total'])}/s undelivered {e['undelivered']} "
        f"cpu {report.fmt(e.get('evactors_cpu_us_per_event'))} us/event | direct p50 "
        f"{report.fmt(d['p50_ms'])} ms p99 {report.fmt(d['p99_ms'])} ms "
        f"{report.fmt(d['rate_total'])}/s undelivered {d['undelivered']}"
    )


def measure_all(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Every run, the micro-benchmarks and the profiles; the raw results."""
    scenarios = _scenarios(args)
    raw: dict[str, Any] = {"runs": [], "micro": None, "profiles": []}
    with Testbed(Path("/tmp") / f"evactors-bench-{out.name}", out / "logs") as bed:
        raw["machine"] = machine.describe(bed.containerd_version())
        for run in range(1, args.runs + 1):
            results: dict[str, Any] = {"scenarios": {}, "idle": None}
            for scenario in scenarios:
                _log(f"run {run}/{args.runs}: {scenario.title}")
                results["scenarios"][scenario.name] = run_scenario(
                    bed, scenario, duration=args.duration, run=run, results=out
                )
                _log("  " + _brief(scenario.name, results["scenarios"][scenario.name]))
            if not args.no_idle:
                _log(f"run {run}/{args.runs}: {args.idle_streams} idle streams")
                results["idle"] = idle.run_idle(bed, run=run, streams=args.idle_streams)
                _log(f"  {json.dumps(results['idle'])}")
            raw["runs"].append(results)
            (out / "results.json").write_text(json.dumps(raw, indent=1))
        for target in [] if args.no_profile else [s for s in SCENARIOS if s.name in PROFILED]:
            _log(f"profile: {target.title}, evactors under py-spy")
            summary = profile.profile(bed, target, duration=args.duration, results=out)
            raw["profiles"].append(summary)
    if not args.no_micro:
        _log("micro-benchmarks")
        micro_out = out / "micro.json"
        command = [sys.executable, "-m", "bench.micro", "--json", str(micro_out)]
        subprocess.run([*command, *(["--quick"] if args.quick else [])], cwd=REPO, check=True)
        raw["micro"] = json.loads(micro_out.read_text())
    return raw


def write_report(raw: dict[str, Any], quick: bool) -> Path:
    """docs/benchmarks.md and .png (bench/results/ for a quick run) from raw results."""
    folder = RESULTS if quick else DOCS
    folder.mkdir(parents=True, exist_ok=True)
    name = "benchmarks-quick" if quick else "benchmarks"
    agg = report.aggregate(raw["runs"])
    plotted = report.plot(folder / f"{name}.png", agg)
    report.write_markdown(folder / f"{name}.md", raw, agg, f"{name}.png" if plotted else None)
    return folder / f"{name}.md"


def main() -> int:
    args = _parse_args()
    if args.report_only:
        raw = json.loads(args.report_only.read_text())
        _log(f"wrote {write_report(raw, raw['settings'].get('quick', False))}")
        return 0
    problem = containerd_available()
    if problem:
        sys.exit(f"bench: {problem}")
    _stop_on_signals()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / (stamp + ("-quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    _log(f"results and logs in {out}")
    started = time.monotonic()
    try:
        raw = measure_all(args, out)
    except KeyboardInterrupt:
        _log("interrupted: every process stopped")
        return 130
    raw["settings"] = {
        "quick": args.quick,
        "runs": args.runs,
        "duration": args.duration,
        "burst": args.burst,
        "idle_streams": args.idle_streams,
    }
    raw["finished"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    raw["elapsed_s"] = time.monotonic() - started
    (out / "results.json").write_text(json.dumps(raw, indent=1))
    _log(f"wrote {write_report(raw, args.quick)} ({raw['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
