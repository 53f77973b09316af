"""`evactors serve` and `evactors events` as processes, on the private containerd.

Real processes, real signals: a killed client process is the only honest test of a
dropped connection, and SIGTERM/SIGINT handling can only be seen from outside.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid

import pytest
import trio

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.grpc import GrpcError, StatusCode
from evactors.rpc import open_system_client

from ._evactors_helpers import eventually, publish_exits

EVACTORS = [sys.executable, "-m", "evactors"]


class LineReader:
    """Lines from a process's pipe, as they come."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def line(self) -> str:
        with trio.fail_after(10):
            while b"\n" not in self._buffer:
                chunk = await self._stream.receive_some()
                if not chunk:
                    raise EOFError(f"the process closed its output; left: {self._buffer!r}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def rest(self) -> str:
        with trio.fail_after(10):
            while chunk := await self._stream.receive_some():
                self._buffer += chunk
        rest, self._buffer = self._buffer, b""
        return rest.decode()


async def wait_exit(process: trio.Process, within: float = 10) -> int:
    with trio.fail_after(within):
        return await process.wait()


# -- evactors events ------------------------------------------------------------------------


@pytest.fixture
def namespace():
    return f"cli-{uuid.uuid4().hex[:8]}"


async def open_events(evactors, *args: str) -> trio.Process:
    return await trio.lowlevel.open_process(
        [*EVACTORS, "events", "--address", str(evactors.addresses[0]), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


GO_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC"


async def test_events_prints_nerdctl_lines_and_ends_quietly_on_ctrl_c(
    evactors, ctd_client, namespace
):
    process = await open_events(evactors, "--filter", f"namespace={namespace}")
    out, err = LineReader(process.stdout), LineReader(process.stderr)
    await eventually(lambda: evactors.pipeline.stats().subscribers == 1)
    await publish_exits(ctd_client, namespace, ["c1", "c2"])
    lines = [await out.line(), await out.line()]
    for line, container_id in zip(lines, ["c1", "c2"], strict=True):
        match = re.fullmatch(rf"({GO_TIME}) {namespace} /tasks/exit (.*)", line)
        assert match, line
        payload = json.loads(match.group(3))
        assert payload["container_id"] == container_id

    process.send_signal(signal.SIGINT)
    assert await wait_exit(process) == 0
    assert not await err.rest()
    await eventually(lambda: evactors.pipeline.stats().subscribers == 0, within=1)


async def test_events_renders_the_format_on_the_server(evactors, ctd_client, namespace):
    process = await open_events(
        evactors, "--filter", f"namespace={namespace}", "--format", "{{.Status}} {{.ID}}"
    )
    out = LineReader(process.stdout)
    await eventually(lambda: evactors.pipeline.stats().subscribers == 1)
    await publish_exits(ctd_client, namespace, ["c1"])
    assert await out.line() == "die c1"
    process.send_signal(signal.SIGTERM)
    assert await wait_exit(process) == 0


async def test_events_since_and_until_take_durations_and_unix_seconds(
    evactors, ctd_client, namespace
):
    await publish_exits(ctd_client, namespace, ["old1", "old2"])
    await eventually(lambda: evactors.pipeline.history.since(0)[-1].container_id == "old2")
    until = f"{time.time_ns() / 1e9:.9f}"
    process = await open_events(
        evactors, "--filter", f"namespace={namespace}", "--since", "1m", "--until", until,
        "--format", "{{.ID}}",
    )  # fmt: skip
    assert await wait_exit(process) == 0  # the window is in the past: replay, then end
    assert (await LineReader(process.stdout).rest()).split() == ["old1", "old2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "colour=red"], 'INVALID_ARGUMENT: invalid filter "colour=red"'),
        (["--format", "{{.Nope}}"], "INVALID_ARGUMENT: invalid template"),
    ],
)
async def test_events_reports_a_server_error_and_fails(evactors, args, message):
    process = await open_events(evactors, *args)
    assert await wait_exit(process) == 1
    assert message in await LineReader(process.stderr).rest()


async def test_events_rejects_a_bad_time_before_calling(evactors):
    process = await open_events(evactors, "--since", "yesterday-ish")
    assert await wait_exit(process) == 2
    assert '--since: invalid time "yesterday-ish"' in await LineReader(process.stderr).rest()


async def test_events_without_a_server_says_so(socket_path):
    process = await trio.lowlevel.open_process(
        [*EVACTORS, "events", "--address", f"unix://{socket_path}"],
        stderr=subprocess.PIPE,
    )
    assert await wait_exit(process) == 1
    assert (
        f"UNAVAILABLE: cannot connect to unix://{socket_path}"
        in await LineReader(process.stderr).rest()
    )


async def test_a_killed_client_process_is_released_within_a_second(evactors):
    processes = [await open_events(evactors, "--filter", "namespace=quiet") for _ in range(3)]
    await eventually(lambda: evactors.pipeline.stats().subscribers == 3)
    for process in processes:
        process.kill()
    for process in processes:
        await wait_exit(process)
    await eventually(lambda: evactors.pipeline.stats().subscribers == 0, within=1)
    await eventually(lambda: evactors.server.statistics().connections == 0, within=1)


# -- evactors serve -------------------------------------------------------------------------


async def start_serve(containerd, socket_path: str) -> tuple[trio.Process, LineReader]:
    """`evactors serve` as a process; returns once it says where it listens."""
    process = await trio.lowlevel.open_process(
        [
            *EVACTORS, "serve",
            "--containerd-address", str(containerd.address),
            "--listen", f"unix://{socket_path}",
        ],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    log = LineReader(process.stderr)
    while "listening on" not in (line := await log.line()):
        pass
    assert f"listening on unix://{socket_path}" in line
    return process, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_ends_streams_with_unavailable_and_exits_cleanly_on_signal(
    containerd, socket_path, signum
):
    process, _ = await start_serve(containerd, socket_path)
    try:
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o660
        async with open_system_client(socket_path) as client:
            assert (await client.info()).service_version  # ready means it answers
            async with client.events(pb.GetSystemEventsRequest()) as stream:
                while (await client.info()).stats.subscribers != 1:  # ruff: ignore[async-busy-wait]
                    await trio.sleep(0.01)
                process.send_signal(signum)
                with pytest.raises(GrpcError) as caught:
                    await _drain(stream)
        assert caught.value.code == StatusCode.UNAVAILABLE
        assert await wait_exit(process, within=5) == 0
        assert not await trio.Path(socket_path).exists()
    finally:
        process.kill()


async def _drain(stream) -> None:
    with trio.fail_after(5):
        async for _ in stream:
            pass


async def test_serve_replaces_a_stale_socket_but_refuses_a_live_one(containerd, socket_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(socket_path)
    stale.close()  # the file stays, nobody answers: what a crashed server leaves
    process, _ = await start_serve(containerd, socket_path)
    try:
        second = await trio.run_process(
            [*EVACTORS, "serve", "--containerd-address", str(containerd.address),
             "--listen", f"unix://{socket_path}"],
            capture_stderr=True,
            check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert f"cannot listen on {socket_path}: a server is answering on it" in (
            second.stderr.decode()
        )
        async with open_system_client(socket_path) as client:
            assert (await client.info()).service_version  # the first one is unharmed
    finally:
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process) == 0
