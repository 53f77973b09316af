"""The facts about the host that `nerdctl info` and `docker info` show.

`read_host_facts` reads them the way Docker's daemon does (pkg/parsers/kernel,
pkg/parsers/operatingsystem, pkg/sysinfo, pkg/meminfo):

- the kernel release, machine and host name from uname(2);
- the operating system's `PRETTY_NAME` from os-release(5): `/etc/os-release`, or
  `/usr/lib/os-release` when that does not exist, or `"Linux"`;
- the usable CPUs (the process's affinity mask, not every CPU of the machine);
- `MemTotal` from `/proc/meminfo`, in bytes.

It reads two small files and makes no other system call that can block for long, so it
needs no thread of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs

# os-release(5): "If not set, a default of PRETTY_NAME="Linux" may be used."
DEFAULT_OPERATING_SYSTEM: Final = "Linux"

# Go's runtime.GOOS, which Docker reports as OSType.
_OS_TYPE: Final = "linux"

_ASSIGNMENT: Final = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)")
# One piece of a shell word: a single-quoted string, a double-quoted string, a
# backslash-escaped character, or a run of other characters.
_SHELL_PIECE: Final = re.compile(
    r"""'(?P<single>[^']*)'|"(?P<double>(?:[^"\\]|\\.)*)"|\\(?P<escaped>.)|(?P<plain>[^'"\\]+)""",
    re.DOTALL,
)
# Inside double quotes a backslash escapes only these, as in sh; before anything else it
# is an ordinary character.
_DOUBLE_QUOTED_ESCAPE: Final = re.compile(r"""\\([$`"\\])""")
_MEMINFO_LINE: Final = re.compile(r"(?P<key>[^:\s]+):\s*(?P<value>[0-9]+)(?:\s+(?P<unit>\S+))?\s*")


@attrs.frozen
class HostFacts:
    """What the host is, as `GetSystemInfo` reports it.

    Attributes:
      kernel_version: The kernel release (`uname -r`), e.g. `6.8.0-45-generic`.
      operating_system: os-release's `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
      os_type: Go's name for the operating system, lower case: `linux`.
      architecture: The machine (`uname -m`), as Docker shows it: `x86_64`, `aarch64`.
      ncpu: How many CPUs this process may run on.
      mem_total: The memory the kernel manages (`MemTotal`), in bytes; 0 if not given.
      name: The host name (`uname -n`).
    """

    kernel_version: str
    operating_system: str
    os_type: str
    architecture: str
    ncpu: int
    mem_total: int
    name: str


def read_host_facts(
    *,
    os_release: Path = Path("/etc/os-release"),
    os_release_fallback: Path = Path("/usr/lib/os-release"),
    meminfo: Path = Path("/proc/meminfo"),
) -> HostFacts:
    """Gather the host's facts, as `nerdctl info` and `docker info` fill them.

    Args:
      os_release: The os-release file to read first.
      os_release_fallback: The os-release file to read when `os_release` does not exist
        (os-release(5) reads the second only then, not when the first lacks a key).
      meminfo: The kernel's memory statistics.

    Returns:
      The facts; `operating_system` is `"Linux"` when neither os-release file exists or
      the one read has no (or an empty) `PRETTY_NAME`.

    Raises:
      OSError: If `meminfo` cannot be read, or an os-release file exists but cannot be
        read.
    """
    uname = os.uname()
    return HostFacts(
        kernel_version=uname.release,
        operating_system=_operating_system(os_release, os_release_fallback),
        os_type=_OS_TYPE,
        architecture=uname.machine,
        ncpu=usable_cpu_count(),
        mem_total=parse_mem_total(meminfo.read_text(encoding="utf-8", errors="replace")),
        name=uname.nodename,
    )


def usable_cpu_count() -> int:
    """How many CPUs this process may run on, as Go's runtime.NumCPU counts them.

    Returns:
      `os.process_cpu_count()` where Python has it (3.13 and later), else the size of the
      process's CPU affinity mask, else the machine's CPU count; at least 1.
    """
    process_cpu_count: Callable[[], int | None] | None = getattr(os, "process_cpu_count", None)
    if process_cpu_count is not None and (count := process_cpu_count()) is not None:
        return max(count, 1)
    sched_getaffinity: Callable[[int], set[int]] | None = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        return max(len(sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def parse_os_release(text: str) -> dict[str, str]:
    """The variables of an os-release(5) file.

    Each line is `KEY=value`, the value quoted as in sh: in single quotes taken as is, in
    double quotes with backslash escaping only `$`, a backquote, `"` and a backslash,
    outside quotes with a backslash escaping any character. Variables are not expanded.
    Blanks around the value are dropped and blanks inside it kept, as systemd reads the
    file. A value whose quotes do not close is taken with the quotes and blanks around
    it stripped, as Docker reads it. Comments (`#`), blank lines and lines that are not
    assignments are skipped; a later assignment replaces an earlier one.

    Args:
      text: The file's contents.

    Returns:
      Each variable's value, by name.
    """
    variables: dict[str, str] = {}
    for line in text.splitlines():
        if match := _ASSIGNMENT.fullmatch(line):
            key, raw = match.groups()
            variables[key] = _unquoted(raw.strip())
    return variables


def parse_mem_total(text: str) -> int:
    """`MemTotal` of a /proc/meminfo text, in bytes.

    Args:
      text: The contents of /proc/meminfo: `MemTotal:   16318292 kB` and so on.

    Returns:
      MemTotal in bytes (the kernel's `kB` is 1024 bytes), or 0 if it is not there.
    """
    for line in text.splitlines():
        match = _MEMINFO_LINE.fullmatch(line)
        if match is not None and match["key"] == "MemTotal":
            value = int(match["value"])
            return value * 1024 if match["unit"] == "kB" else value
    return 0


def _operating_system(os_release: Path, fallback: Path) -> str:
    for path in (os_release, fallback):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        return parse_os_release(text).get("PRETTY_NAME") or DEFAULT_OPERATING_SYSTEM
    return DEFAULT_OPERATING_SYSTEM


def _unquoted(raw: str) -> str:
    """The value a shell-quoted word stands for; see `parse_os_release`."""
    pieces: list[str] = []
    position = 0
    while position < len(raw):
        match = _SHELL_PIECE.match(raw, position)
        if match is None:  # an unterminated quote, or a backslash at the end
            return raw.strip("\"' ")
        if (single := match["single"]) is not None:
            pieces.append(single)
        elif (double := match["double"]) is not None:
            pieces.append(_DOUBLE_QUOTED_ESCAPE.sub(r"\1", double))
        elif (escaped := match["escaped"]) is not None:
            pieces.append(escaped)
        else:
            pieces.append(match["plain"])
        position = match.end()
    return "".join(pieces)
