"""`read_host_facts` and its parsers: os-release variants, meminfo, CPUs, live values."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evactors.system import host
from evactors.system.host import (
    HostFacts,
    parse_mem_total,
    parse_os_release,
    read_host_facts,
    usable_cpu_count,
)

# Hypothesis would otherwise write a .hypothesis/ directory into the shared checkout.
quick = settings(database=None, max_examples=300, deadline=None)

MEMINFO = """\
MemTotal:       24683792 kB
MemFree:        24105756 kB
MemAvailable:   24205024 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""

DEBIAN = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""

on_linux = pytest.mark.skipif(
    not Path("/proc/meminfo").exists(), reason="needs Linux's /proc/meminfo"
)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    return {
        "os_release": tmp_path / "etc-os-release",
        "os_release_fallback": tmp_path / "usr-lib-os-release",
        "meminfo": meminfo,
    }


def facts(files: dict[str, Path]) -> HostFacts:
    return read_host_facts(**files)


# --- Operating system -------------------------------------------------------------------


def test_pretty_name_from_etc_os_release(files: dict[str, Path]):
    files["os_release"].write_text(DEBIAN)
    files["os_release_fallback"].write_text('PRETTY_NAME="Not this one"\n')
    assert facts(files).operating_system == "Debian GNU/Linux 12 (bookworm)"


def test_falls_back_to_usr_lib_os_release(files: dict[str, Path]):
    files["os_release_fallback"].write_text("PRETTY_NAME='Fedora Linux 41 (Container Image)'\n")
    assert facts(files).operating_system == "Fedora Linux 41 (Container Image)"


def test_linux_when_no_os_release_exists(files: dict[str, Path]):
    assert facts(files).operating_system == "Linux"


@pytest.mark.parametrize(
    "text", ["", "NAME=Alpine\nID=alpine\n", "PRETTY_NAME=\n", 'PRETTY_NAME=""\n']
)
def test_linux_when_pretty_name_is_missing_or_empty(files: dict[str, Path], text: str):
    files["os_release"].write_text(text)
    # os-release(5): the second file is read only when the first does not exist.
    files["os_release_fallback"].write_text('PRETTY_NAME="Not this one"\n')
    assert facts(files).operating_system == "Linux"


def test_os_release_as_a_symlink(files: dict[str, Path]):
    files["os_release_fallback"].write_text(DEBIAN)
    files["os_release"].symlink_to(files["os_release_fallback"])
    assert facts(files).operating_system == "Debian GNU/Linux 12 (bookworm)"


def test_an_unreadable_os_release_is_an_error(files: dict[str, Path]):
    files["os_release"].mkdir()
    with pytest.raises(IsADirectoryError):
        facts(files)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('PRETTY_NAME="Ubuntu 24.04.1 LTS"', "Ubuntu 24.04.1 LTS"),
        ("PRETTY_NAME='Ubuntu 24.04.1 LTS'", "Ubuntu 24.04.1 LTS"),
        ("PRETTY_NAME=Alpine", "Alpine"),
        ("PRETTY_NAME=Alpine\\ Linux", "Alpine Linux"),
        # Double quotes: a backslash escapes only $ ` " and itself.
        (r'PRETTY_NAME="Say \"hi\""', 'Say "hi"'),
        (r'PRETTY_NAME="cost \$5 \`x\` a\\b"', "cost $5 `x` a\\b"),
        (r'PRETTY_NAME="keep \n and \t"', r"keep \n and \t"),
        # Single quotes: no escapes at all.
        (r"PRETTY_NAME='a \"b\" \$c \\'", r"a \"b\" \$c \\"),
        # Unquoted: a backslash escapes anything.
        (r"PRETTY_NAME=a\"b\'c\\d", "a\"b'c\\d"),
        # Pieces concatenate, as in sh.
        ("PRETTY_NAME=\"Arch\"' Linux'\\!", "Arch Linux!"),
        ('PRETTY_NAME="A""B"', "AB"),
        # No variable expansion (os-release(5)).
        ('PRETTY_NAME="$NAME $VERSION"', "$NAME $VERSION"),
        # Blanks around the value dropped, inside it kept (as systemd reads the file).
        ('PRETTY_NAME=  "Spaced"  ', "Spaced"),
        ("PRETTY_NAME=Foo Bar", "Foo Bar"),
        ('  PRETTY_NAME="Indented"', "Indented"),
        ('PRETTY_NAME="   padded   "', "   padded   "),
        # Unterminated quotes: the value as Docker takes it, quotes stripped.
        ('PRETTY_NAME="Broken', "Broken"),
        ("PRETTY_NAME='Broken", "Broken"),
        ("PRETTY_NAME=Trailing\\", "Trailing\\"),
        # UTF-8 and an equals sign in the value.
        ('PRETTY_NAME="Gentoo Linux — a=b"', "Gentoo Linux — a=b"),
    ],
)
def test_shell_quoting(files: dict[str, Path], line: str, expected: str):
    files["os_release"].write_text(f"# comment\n\nNAME=x\n{line}\nID=x\n")
    assert facts(files).operating_system == expected
    assert parse_os_release(line)["PRETTY_NAME"] == expected


def test_parse_os_release_skips_comments_and_junk_and_keeps_the_last():
    text = (
        "# PRETTY_NAME=commented\n"
        "   \n"
        "not an assignment\n"
        "pretty_name=lower case is another key\n"
        "PRETTY NAME=bad key\n"
        "1KEY=bad key\n"
        'PRETTY_NAME="first"\n'
        'PRETTY_NAME="second"\r\n'
        "export ID=debian\n"
    )
    assert parse_os_release(text) == {
        "pretty_name": "lower case is another key",
        "PRETTY_NAME": "second",
    }


def test_parse_os_release_of_a_real_file():
    assert parse_os_release(DEBIAN) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
        "NAME": "Debian GNU/Linux",
        "VERSION_ID": "12",
        "VERSION": "12 (bookworm)",
        "VERSION_CODENAME": "bookworm",
        "ID": "debian",
        "HOME_URL": "https://www.debian.org/",
    }


def shell_double_quoted(value: str) -> str:
    escaped = "".join("\\" + char if char in '$`"\\' else char for char in value)
    return f'"{escaped}"'


def shell_single_quoted(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


@quick
@given(value=st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"])))
def test_quoting_round_trips(value: str):
    assert parse_os_release("PRETTY_NAME=" + shell_double_quoted(value)) == {"PRETTY_NAME": value}
    assert parse_os_release("PRETTY_NAME=" + shell_single_quoted(value)) == {"PRETTY_NAME": value}


# --- Memory ---------------------------------------------------------------------------------


def test_mem_total_in_bytes(files: dict[str, Path]):
    assert facts(files).mem_total == 24683792 * 1024


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MEMINFO, 24683792 * 1024),
        ("MemFree: 1 kB\nMemTotal: 2 kB\n", 2048),
        ("MemTotal:\t16318292 kB", 16318292 * 1024),
        ("MemTotal: 4096", 4096),  # no unit: bytes
        ("MemFree: 1 kB\n", 0),  # no MemTotal: 0, as Docker reports it
        ("", 0),
        ("MemTotal: lots kB\n", 0),
        ("MemTotalX: 5 kB\nMemTotal: 7 kB\n", 7 * 1024),
    ],
)
def test_parse_mem_total(text: str, expected: int):
    assert parse_mem_total(text) == expected


def test_a_missing_meminfo_is_an_error(files: dict[str, Path]):
    files["meminfo"].unlink()
    with pytest.raises(FileNotFoundError):
        facts(files)


# --- CPUs -------------------------------------------------------------------------------------


def test_usable_cpus_prefer_process_cpu_count(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(os, "process_cpu_count", lambda: 3, raising=False)
    assert usable_cpu_count() == 3


def test_usable_cpus_fall_back_to_the_affinity_mask(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(os, "process_cpu_count", lambda: None, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert usable_cpu_count() == 3
    monkeypatch.delattr(os, "process_cpu_count")
    assert usable_cpu_count() == 3


def test_usable_cpus_without_an_affinity_mask(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpu_count() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert usable_cpu_count() == 8


# --- Live values ---------------------------------------------------------------------------


@on_linux
def test_live_facts_match_the_system():
    live = read_host_facts()
    uname = os.uname()
    assert (
        live.kernel_version
        == uname.release
        == Path("/proc/sys/kernel/osrelease").read_text(encoding="ascii").strip()
    )
    assert live.architecture == uname.machine
    assert live.name == uname.nodename == socket.gethostname()
    assert live.os_type == "linux"
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    expected_cpus = process_cpu_count() if process_cpu_count else len(os.sched_getaffinity(0))
    assert live.ncpu == expected_cpus
    assert 1 <= live.ncpu <= (os.cpu_count() or live.ncpu)
    with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
        first = meminfo.readline().split()
    assert first[0] == "MemTotal:"
    assert first[2] == "kB"
    assert live.mem_total == int(first[1]) * 1024
    assert live.mem_total > 0
    assert live.operating_system
    assert live == read_host_facts()


@on_linux
def test_live_operating_system_matches_os_release():
    for path in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        if path.exists():
            expected = (
                parse_os_release(path.read_text(encoding="utf-8")).get("PRETTY_NAME") or "Linux"
            )
            break
    else:
        expected = "Linux"
    assert read_host_facts().operating_system == expected


def test_host_facts_are_frozen(files: dict[str, Path]):
    result = facts(files)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.ncpu = 1  # type: ignore[misc]
    assert tuple(field.name for field in attrs.fields(HostFacts)) == (
        "kernel_version",
        "operating_system",
        "os_type",
        "architecture",
        "ncpu",
        "mem_total",
        "name",
    )


def test_default_operating_system_constant():
    assert host.DEFAULT_OPERATING_SYSTEM == "Linux"
