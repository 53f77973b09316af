"""From the runs' figures to docs/benchmarks.md and its plot.

`aggregate` takes every run's figures and keeps, for each figure, the median over the
runs; for each evactors figure also the median over the runs of evactors / direct
(each run pairs the two phases under the same conditions, which a ratio of medians
would not). `targets` checks the numbers of issue 5, `write_markdown` renders the
tables (targets first), `plot` draws latency and throughput against K.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .measure import median
from .scenarios import SCENARIOS

US = "\N{MICRO SIGN}s"
TIMES = "\N{MULTIPLICATION SIGN}"

# (key, label) of the figures shown side by side for evactors and direct.
FIGURES = (
    ("rate_per_stream", "delivered events/s per client"),
    ("rate_total", "delivered events/s, all clients"),
    ("p50_ms", "latency p50, ms"),
    ("p99_ms", "latency p99, ms"),
    ("max_ms", "latency max, ms"),
    ("undelivered", "events not delivered"),
    ("containerd_cpu_s", "containerd CPU, s"),
    ("clients_cpu_s", "clients' CPU, s"),
    ("publisher_cpu_s", "publisher's CPU, s"),
    ("others_cpu_s", "CPU of other processes on the machine meanwhile, s"),
    ("publish_rate", "publisher's achieved rate, events/s"),
)
EVACTORS_FIGURES = (
    ("evactors_cpu_s", "evactors CPU, s"),
    ("evactors_cpu_us_per_event", f"evactors CPU per delivered event, {US}"),
    ("evactors_peak_rss_mb", "evactors peak RSS, MB"),
)
IDLE_FIGURES = (
    ("rss_before_mb", "evactors RSS before the streams, MiB"),
    ("rss_open_mb", "evactors RSS with the streams open, MiB"),
    ("kb_per_stream", "memory per idle stream, KB"),
    ("open_s", "time to open them all, s"),
    ("cancel_release_s", "all cancelled at once (RST_STREAM): released after, s"),
    ("cancel_release_us_per_stream", f"... per stream, {US}"),
    ("kill_release_s", "all client processes killed at once: released after, s"),
    ("kill_release_us_per_stream", f"... per stream, {US}"),
    ("rss_after_cancel_mb", "evactors RSS after the cancelled streams, MiB"),
    ("poll_ms", "one poll of stats.subscribers (resolution of the times above), ms"),
)

Row = tuple[str, str, str, bool | None]  # target, evactors, direct, met


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs of every figure, and of every evactors / direct ratio."""
    scenarios: dict[str, Any] = {}
    for scenario in SCENARIOS:
        phases = [
            run["scenarios"][scenario.name] for run in runs if scenario.name in run["scenarios"]
        ]
        if not phases:
            continue
        result: dict[str, Any] = {"title": scenario.title, "streams": scenario.streams}
        for mode in ("direct", "evactors"):
            keys = {key for phase in phases for key, value in phase[mode].items() if _number(value)}
            result[mode] = {key: median([phase[mode].get(key) for phase in phases]) for key in keys}
            result[mode]["runs"] = {key: [phase[mode].get(key) for phase in phases] for key in keys}
            result[mode]["stream_ends"] = [phase[mode]["stream_ends"] for phase in phases]
        # No ratio for what other processes took: it says how quiet the machine was.
        result["ratio"] = {
            key: median(
                [_ratio(phase["evactors"].get(key), phase["direct"].get(key)) for phase in phases]
            )
            for key, _ in FIGURES
            if key != "others_cpu_s"
        }
        scenarios[scenario.name] = result
    idle_runs = [run["idle"] for run in runs if run.get("idle")]
    idle = {}
    if idle_runs:
        keys = [key for key, value in idle_runs[0].items() if _number(value)]
        idle = {key: median([run[key] for run in idle_runs]) for key in keys}
        idle["runs"] = {key: [run[key] for run in idle_runs] for key in keys}
        # The target is in KB (1,000 bytes); /proc counts KiB.
        idle["kb_per_stream"] = idle["kib_per_stream"] * 1.024
    return {"scenarios": scenarios, "idle": idle, "runs": len(runs)}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ratio(evactors: float | None, direct: float | None) -> float | None:
    if evactors is None or direct is None or direct == 0:
        return None
    return evactors / direct


# -- targets ------------------------------------------------------------------------------


def _keeps_up(figures: dict[str, Any]) -> bool:
    """Nothing undelivered, and the delivered rate within 5 % of the published one."""
    wanted = figures["publish_rate"] * figures["expected_per_stream"] / figures["published"]
    return figures["undelivered"] == 0 and figures["rate_per_stream"] >= 0.95 * wanted


@dataclass(frozen=True)
class Target:
    """A number of issue 5 that one evactors figure must meet."""

    scenario: str
    text: str
    key: str
    check: Callable[[float], bool]
    unit: str = ""


def _figure_row(agg: dict[str, Any], target: Target) -> Row:
    scenario = agg["scenarios"].get(target.scenario)
    if scenario is None or scenario["evactors"].get(target.key) is None:
        return (target.text, "not measured", "", None)
    value = scenario["evactors"][target.key]
    direct = scenario["direct"].get(target.key)
    return (
        target.text,
        f"{fmt(value)}{target.unit}{_spread(scenario['evactors']['runs'][target.key])}",
        "" if direct is None else f"{fmt(direct)}{target.unit}",
        target.check(value),
    )


def _keeps_up_row(agg: dict[str, Any], name: str, target: str) -> Row:
    scenario = agg["scenarios"].get(name)
    if scenario is None:
        return (target, "not measured", "", None)

    def shown(figures: dict[str, Any]) -> str:
        rate = fmt(figures["rate_per_stream"])
        return f"{fmt(figures['undelivered'])} undelivered, {rate}/s per client"

    return (
        target,
        shown(scenario["evactors"]),
        shown(scenario["direct"]),
        _keeps_up(scenario["evactors"]),
    )


def _burst_row(agg: dict[str, Any]) -> Row:
    target = f"burst of 20,000, K=1: delivered rate ≥ 0.85 {TIMES} direct's"
    burst = agg["scenarios"].get("burst-20000-k1")
    ratio = burst["ratio"].get("rate_total") if burst else None
    if burst is None or ratio is None:
        return (target, "not measured", "", None)
    ratios = [
        _ratio(e, d)
        for e, d in zip(
            burst["evactors"]["runs"]["rate_total"],
            burst["direct"]["runs"]["rate_total"],
            strict=True,
        )
    ]
    measured = (
        f"{fmt(burst['evactors']['rate_total'])}/s = {ratio:.2f} {TIMES} direct{_spread(ratios)}"
    )
    return (target, measured, f"{fmt(burst['direct']['rate_total'])}/s", ratio >= 0.85)


def targets(agg: dict[str, Any]) -> list[Row]:
    """(target, evactors, direct, met) for each number of issue 5."""
    rows = [
        _figure_row(agg, Target("steady-2000-k1", "steady 2,000/s, K=1: nothing undelivered",
                                "undelivered", lambda v: v == 0)),
        _figure_row(agg, Target("steady-2000-k1", "steady 2,000/s, K=1: p99 ≤ 2 ms",
                                "p99_ms", lambda v: v <= 2, " ms")),
        _keeps_up_row(agg, "steady-2000-k10",
                      "steady 2,000/s, K=10: keeps up, nothing undelivered"),
        _figure_row(agg, Target("steady-2000-k10", "steady 2,000/s, K=10: p99 ≤ 75 ms",
                                "p99_ms", lambda v: v <= 75, " ms")),
        _keeps_up_row(agg, "steady-200-k100", "steady 200/s, K=100: keeps up"),
        _figure_row(agg, Target("steady-200-k100", "steady 200/s, K=100: p99 ≤ 10 ms",
                                "p99_ms", lambda v: v <= 10, " ms")),
        _burst_row(agg),
        _figure_row(agg, Target("filter-2000-k10", "K=10, 1-in-5 filter, 2,000/s: p99 ≤ 3 ms",
                                "p99_ms", lambda v: v <= 3, " ms")),
        _figure_row(agg, Target("steady-2000-k10",
                                f"evactors CPU ≤ 30 {US} per delivered event at K=10",
                                "evactors_cpu_us_per_event", lambda v: v <= 30, f" {US}")),
        _figure_row(agg, Target("steady-200-k100", "peak RSS ≤ 80 MB at K=100",
                                "evactors_peak_rss_mb", lambda v: v <= 80, " MB")),
    ]  # fmt: skip
    idle = agg["idle"]
    if idle:
        kb = idle["kb_per_stream"]
        spread = _spread([value * 1.024 for value in idle["runs"]["kib_per_stream"]])
        rows.append(("1,000 idle streams cost ≤ 20 KB each", f"{fmt(kb)} KB{spread}", "", kb <= 20))
        for key, how in (
            ("cancel_release_s", "cancelled"),
            ("kill_release_s", "dropped (client processes killed)"),
        ):
            rows.append(
                (
                    f"1,000 streams {how} at once: all released within 1 s",
                    f"{fmt(idle[key])} s{_spread(idle['runs'][key])}",
                    "",
                    idle[key] <= 1,
                )
            )
    return rows


# -- markdown -----------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    """A figure with as many digits as are worth reading."""
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _spread(values: list[float | None]) -> str:
    """The runs' values, when there are several: ` (runs: 1.2, 3.4, 5.6)`."""
    if len(values) < 2:
        return ""
    return " (runs: " + ", ".join(fmt(value) for value in sorted(values, key=_sort_key)) + ")"


def _sort_key(value: float | None) -> float:
    return float("inf") if value is None else value


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}{TIMES}"


def _ends(ends: list[dict[str, int]]) -> str:
    """How the streams ended in each run: `end` is the END marker, anything else a status."""
    return "; ".join(", ".join(f"{k} {v}" for k, v in sorted(run.items())) for run in ends)


def _header(raw: dict[str, Any], agg: dict[str, Any], plot_name: str | None) -> list[str]:
    machine = raw["machine"]
    lines = ["# Benchmarks", "", "<!-- Generated by `bash bench/run`: do not edit by hand. -->", ""]
    if raw["settings"].get("quick"):
        lines += ["**A `--quick` smoke run (one run, short phases): not figures to quote.**", ""]
    lines += [
        f"Measured {raw['finished']} on {machine['cores']} cores ({machine['cpu']}), "
        f"kernel {machine['kernel']}, {machine['memory_gib']} GiB, {machine['os']}; "
        f"evactors {machine['versions']['evactors commit']}. Every figure is the median of "
        f"{agg['runs']} run(s); each ratio is the median of the runs' evactors / direct. "
        "Regenerate with `bash bench/run` (as root, on Debian 12; `--help` for options).",
        "",
        "The machine has two cores shared by containerd, evactors, the publisher and the "
        "clients, and they are noisy: quote medians and ratios, not single figures.",
        "",
        "## The targets of issue 5",
        "",
        "| target | evactors | direct | met |",
        "|---|---:|---:|:---:|",
    ]
    for target, measured, direct, met in targets(agg):
        mark = "-" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {target} | {measured} | {direct} | {mark} |")
    lines += [
        "",
        "*Keeps up*: nothing undelivered, and each client's delivered rate within 5 % of "
        "the rate its events were published at.",
        "",
    ]
    if plot_name:
        lines += [f"![latency and throughput against K]({plot_name})", ""]
    return lines


def _scenario_tables(agg: dict[str, Any]) -> list[str]:
    lines = [
        "## Streaming scenarios: evactors next to a client subscribed directly to containerd",
        "",
        "*Direct* is the same client processes subscribed to containerd's own "
        '`Events/Subscribe` (filter `namespace=="bench"`, plus `topic=="/tasks/start"` '
        "for the filtered scenario), in the same run, with the same publisher schedule: "
        "the limit any relay can reach. Ratios are evactors / direct: above 1 is worse for "
        "latency and CPU, below 1 is worse for rates.",
        "",
        "| scenario | figure | evactors | direct | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for result in agg["scenarios"].values():
        evactors, direct, ratio = result["evactors"], result["direct"], result["ratio"]
        for n, (key, label) in enumerate(FIGURES):
            title = result["title"] if n == 0 else ""
            lines.append(
                f"| {title} | {label} | {fmt(evactors.get(key))} | {fmt(direct.get(key))} | "
                f"{_ratio_text(ratio.get(key))} |"
            )
        lines.extend(
            f"| | {label} | {fmt(evactors.get(key))} | | |" for key, label in EVACTORS_FIGURES
        )
        lines.append(
            f"| | how the streams ended, per run | {_ends(evactors['stream_ends'])} | "
            f"{_ends(direct['stream_ends'])} | |"
        )
    lines += [
        "",
        "`end`: the stream saw the publisher's end marker; another word is the gRPC status "
        "the stream ended with (`RESOURCE_EXHAUSTED`: evactors cut off a client whose "
        "backlog overflowed) or `stopped` (still open when the phase timed out).",
        "",
    ]
    return lines


def _idle_table(idle: dict[str, Any]) -> list[str]:
    if not idle:
        return []
    lines = [f"## {fmt(idle['streams'])} idle streams", "", "| figure | value |", "|---|---:|"]
    lines += [f"| {label} | {fmt(idle.get(key))} |" for key, label in IDLE_FIGURES]
    return [*lines, ""]


def _micro_table(micro: dict[str, float] | None) -> list[str]:
    if not micro:
        return []
    lines = [
        "## Micro-benchmarks (`.venv/bin/python -m bench.micro`)",
        "",
        f"Median {US} per event (per delivery for the per-client rows), in one process; "
        "see the docstring of `bench/micro.py` for what each includes.",
        "",
        f"| operation | {US} |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {fmt(value)} |" for name, value in micro.items()]
    return [*lines, ""]


def _profile_tables(profiles: list[dict[str, Any]]) -> list[str]:
    """One table per view, one column per profiled scenario."""
    done = [p for p in profiles if p.get("samples")]
    lines = [f"Profile: {p['error']}" for p in profiles if p.get("error")]
    if not done:
        return [*lines, ""] if lines else []
    columns = " | ".join(f"{p['scenario']}: % of {fmt(p['samples'])} samples" for p in done)
    raws = ", ".join(f"`{p['raw']}`" for p in done)
    lines += [
        "## Where evactors' CPU goes (py-spy)",
        "",
        "Samples of `evactors serve` (`py-spy record --rate 200`: it pauses the process for "
        "each sample, so the stacks are whole; idle samples are left out, so a sample is "
        "CPU in use, system calls included) during one "
        "extra evactors phase per scenario after the measured runs; raw stacks in "
        f"`bench/results/<run>/` ({raws}).",
        "",
    ]
    for key, heading in (
        ("stages", "stage (first match on the stack)"),
        ("by_package", "innermost frame in"),
        ("evactors_inclusive", "evactors function (anywhere on the stack)"),
        ("top_self", "function (own samples)"),
    ):
        shares = [dict(p.get(key, [])) for p in done]
        names = list(dict.fromkeys(name for share in shares for name in share))
        names.sort(key=lambda name: -max(share.get(name, 0.0) for share in shares))
        lines += [f"| {heading} | {columns} |", "|---|" + "---:|" * len(done)]
        for name in names:
            cells = " | ".join(f"{share[name]:.1f}" if name in share else "" for share in shares)
            lines.append(f"| `{name}` | {cells} |")
        lines.append("")
    return lines


def _method(settings: dict[str, Any]) -> list[str]:
    return [
        "## Method",
        "",
        "- **Processes.** A private containerd (`evactors.testing.start_private_containerd`), "
        "a fresh `evactors serve` for every scenario (so its peak RSS is that "
        "scenario's), a publisher process, and the K client streams in "
        "ceil(K / 25) processes of grpc.aio streams, so that no client CPU is counted as "
        "the server's. evactors does not run during the direct phase.",
        "- **Workload.** The life of one short-lived container after another: "
        "`/containers/create`, `/tasks/start`, `/tasks/exit`, `/tasks/delete`, "
        "`/containers/delete`, with containerd's own payload messages in an `Any` with the "
        "bare type URL, in namespace `bench`, through `Events/Publish`. The container ids "
        "do not exist in containerd, so evactors' container lookup (one `Containers.Get` "
        "per new container) answers NotFound. Steady phases last "
        f"{settings['duration']} s; a burst is {fmt(settings['burst'])} events "
        "published as fast as they go.",
        "- **Publisher.** Open loop: event i is due at start + i / rate, whatever the "
        "subscribers do. It frames the gRPC calls itself on one HTTP/2 connection "
        f"(`bench/rawgrpc.py`): about 5 {US} of CPU per call in a burst (at a steady rate "
        "the system calls of small batches dominate: about a fifth of a core at 2,000/s), "
        f"where grpcio spends 150 to 200 {US} per call; so containerd, not the publisher, "
        "limits a burst (grpcio's best here, 16 "
        "calls in flight over 4 connections, published about 3,300 events/s while one "
        "subscriber ran; `python -m bench.publisher --via grpcio` for comparison).",
        "- **Phase.** Warm-up markers until every stream has seen one (neither server sends "
        "response headers before the first event), then the publisher, then an end marker "
        "that every filter lets through; a stream ends when it sees it. Latency is the "
        "client's `time.time_ns()` at receipt minus containerd's envelope timestamp "
        "(`SystemEvent.timestamp` through evactors). Delivered events/s is a stream's "
        "events over the time from the first publish to its last event; the total is all "
        "streams' events over the time to the last one. Events not delivered: what the "
        "publisher sent that the filter selects, minus what the stream received.",
        "- **CPU and memory.** utime + stime from `/proc/PID/stat` before and after the "
        "phase (evactors, containerd; clients report their own `getrusage`); peak RSS is "
        "`VmHWM` from `/proc/PID/status`; evactors CPU per delivered event divides its "
        "CPU seconds by the events all clients received.",
        "- **Idle streams.** `VmRSS` of a fresh evactors before and after 1,000 streams "
        "(10 processes x 4 connections x 25 streams, filtering a namespace that gets no "
        "events) are open, by `stats.subscribers` from GetSystemInfo; then every process "
        "cancels its calls at once, and the time until `stats.subscribers` is 0 is "
        "measured by polling; the same again with the processes SIGKILLed.",
        "- **Raw results.** `bench/results/` (JSON per run, logs, profiles; not committed).",
        "",
    ]


def _machine_table(raw: dict[str, Any]) -> list[str]:
    machine = raw["machine"]
    lines = ["## Machine and versions", "", "| | |", "|---|---|"]
    lines += [
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['cores']} |",
        f"| kernel | {machine['kernel']} |",
        f"| memory | {machine['memory_gib']} GiB |",
        f"| OS | {machine['os']} |",
    ]
    lines += [f"| {name} | {version} |" for name, version in machine["versions"].items()]
    settings = ", ".join(f"{k}={v}" for k, v in raw["settings"].items())
    lines += [f"| settings | {settings} |", f"| wall time | {raw['elapsed_s']:.0f} s |", ""]
    return lines


def write_markdown(
    path: Path, raw: dict[str, Any], agg: dict[str, Any], plot_name: str | None
) -> None:
    """The whole report: targets, scenarios, idle streams, micro, profile, method, machine."""
    lines = [
        *_header(raw, agg, plot_name),
        *_scenario_tables(agg),
        *_idle_table(agg["idle"]),
        *_micro_table(raw.get("micro")),
        *_profile_tables(raw.get("profiles") or []),
        *_method(raw["settings"]),
        *_machine_table(raw),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


# -- plot ---------------------------------------------------------------------------------


def plot(path: Path, agg: dict[str, Any]) -> bool:
    """Latency (p50, p99) and delivered rate against K, evactors and direct (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    s = agg["scenarios"]
    steady = [n for n in ("steady-2000-k1", "steady-2000-k10", "steady-200-k100") if n in s]
    bursts = [n for n in ("burst-20000-k1", "burst-20000-k10") if n in s]
    if not steady and not bursts:
        return False
    fig, (latency, rate) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"evactors": ("tab:red", "-"), "direct": ("tab:blue", "--")}
    for mode, (color, line) in styles.items():
        ks = [s[name]["streams"] for name in steady]
        for key, marker in (("p50_ms", "o"), ("p99_ms", "^")):
            values = [s[name][mode][key] for name in steady]
            latency.plot(ks, values, line, color=color, marker=marker, label=f"{mode} {key[:3]}")
        for names, marker, what in ((steady, "o", "steady"), (bursts, "s", "burst")):
            if names:
                ks = [s[name]["streams"] for name in names]
                values = [s[name][mode]["rate_total"] for name in names]
                rate.plot(ks, values, line, color=color, marker=marker, label=f"{mode}, {what}")
    for name in steady:
        latency.annotate(
            s[name]["title"].replace("steady ", ""),
            (s[name]["streams"], s[name]["evactors"]["p99_ms"]),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=7,
        )
    latency.set(
        xlabel="K (client streams)",
        ylabel="latency, ms",
        title="Latency, steady scenarios (2,000/s at K=1 and 10, 200/s at K=100)",
    )
    if not steady:  # a run of bursts only (--scenarios): nothing to put on a log scale
        latency.axis("off")
    rate.set(
        xlabel="K (client streams)",
        ylabel="delivered events/s, all clients",
        title="Throughput (steady: the publisher's rate x K; burst: as fast as it goes)",
    )
    for axis in (latency, rate) if steady else (rate,):
        axis.set(xscale="log", yscale="log")
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(FuncFormatter(_tick))
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.grid(visible=True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
        axis.title.set_fontsize(9)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    fig.suptitle(
        f"evactors vs containerd direct (medians of {agg['runs']} runs, {stamp})", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _tick(value: float, _position: int) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"
