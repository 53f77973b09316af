"""The `evactors` command as a process: the console script and `python -m evactors`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import evactors

COMMANDS = {
    # The console script installed beside this Python (in the project's venv).
    "console-script": [str(Path(sys.executable).parent / "evactors")],
    "module": [sys.executable, "-m", "evactors"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_version(command):
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout == f"evactors {evactors.__version__}\n"


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_help(command):
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: evactors")
    assert "--version" in result.stdout


def test_no_command_prints_usage_and_fails():
    result = subprocess.run(COMMANDS["module"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: evactors")
