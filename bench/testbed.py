"""The processes of a benchmark run, started and always stopped.

- a private containerd (`evactors.testing.start_private_containerd`, as the tests use),
  kept for the whole run;
- `evactors serve` as a separate process (`python -m evactors serve`), started fresh for
  every scenario so that its peak RSS is that scenario's;
- client and publisher processes (`bench.clients`, `bench.publisher`).

`Testbed` owns every process it starts: `close()` (also on Ctrl-C or an error, through
`with Testbed(...)`) kills whatever still runs and stops containerd, leaving nothing
behind. The orchestrator talks to containerd and evactors with plain grpcio: warm-up
markers through Publish, and GetSystemInfo for evactors' `stats.subscribers`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import grpc

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.testing import (
    PrivateContainerd,
    start_private_containerd,
    stop_private_containerd,
)

from . import workload

REPO = Path(__file__).resolve().parent.parent


class Process:
    """A child process whose stdout lines are collected by a thread as they come."""

    def __init__(self, argv: Sequence[str], *, log: Path, stdin: bool = False) -> None:
        self.argv = list(argv)
        self.log = log
        with log.open("ab") as stderr:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=REPO,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,  # a ^C in the terminal goes to the orchestrator only
            )
        self.pid = self.popen.pid
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(self.popen.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.strip())
        self.lines.put("")  # EOF

    def expect(self, word: str, deadline: float) -> str:
        """The first stdout line starting with `word`; RuntimeError past `deadline`."""
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{self.argv[2]}: no `{word}` in time") from None
            if line.startswith(word):
                return line
            if not line and self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.argv[2]} exited with {self.popen.returncode}; see {self.log}"
                )

    def write(self, line: str) -> None:
        assert self.popen.stdin is not None
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.popen.stdin.write(line + "\n")
            self.popen.stdin.flush()

    def wait(self, timeout: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.popen.wait(timeout)
        return None

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Evactors:
    """A running `evactors serve` process."""

    def __init__(self, process: Process, socket: Path) -> None:
        self.process = process
        self.socket = socket
        self.pid = process.pid
        self.channel = grpc.insecure_channel(f"unix:{socket}")
        self._info = self.channel.unary_unary(
            workload.INFO_METHOD,
            request_serializer=pb.GetSystemInfoRequest.SerializeToString,
            response_deserializer=pb.GetSystemInfoResponse.FromString,
        )

    def stats(self) -> pb.ServiceStats:
        """The service's stats (GetSystemInfo of a namespace that has nothing in it)."""
        request = pb.GetSystemInfoRequest(namespace=workload.QUIET_NAMESPACE)
        return self._info(request, timeout=10).stats

    def wait_subscribers(self, count: int, timeout: float) -> float:
        """Poll the stats until `subscribers == count`; the time that took, seconds."""
        start = time.monotonic()
        while self.stats().subscribers != count:
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"evactors: subscribers never reached {count}")
            time.sleep(0.002)
        return time.monotonic() - start

    def stop(self) -> None:
        """SIGTERM (the graceful stop), SIGKILL if it takes more than 5 s."""
        self.channel.close()
        if self.process.popen.poll() is None:
            self.process.popen.send_signal(signal.SIGTERM)
            if self.process.wait(5) is None:
                self.process.kill()
        self.process.kill()


class Testbed:
    """containerd for the whole run, evactors and helper processes on demand."""

    def __init__(self, workdir: Path, logs: Path) -> None:
        self.workdir = workdir
        self.logs = logs
        self.containerd: PrivateContainerd | None = None
        self.processes: list[Process] = []
        self._publish_channel: grpc.Channel | None = None

    def __enter__(self) -> Testbed:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.containerd = start_private_containerd(self.workdir / "containerd")
        self._publish_channel = grpc.insecure_channel(f"unix:{self.containerd.address}")
        self._publish = self._publish_channel.unary_unary(
            workload.PUBLISH_METHOD, request_serializer=None, response_deserializer=None
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        self.processes.clear()
        if self._publish_channel is not None:
            self._publish_channel.close()
            self._publish_channel = None
        if self.containerd is not None:
            stop_private_containerd(self.containerd)
            self.containerd = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def containerd_address(self) -> str:
        assert self.containerd is not None
        return str(self.containerd.address)

    @property
    def containerd_pid(self) -> int:
        assert self.containerd is not None
        return self.containerd.pid

    def containerd_version(self) -> str:
        assert self.containerd is not None
        return self.containerd.version()

    def start(self, module: str, *args: str, log: str, stdin: bool = False) -> Process:
        """Start `python -m module args...` (stderr to `logs/log`)."""
        process = Process([sys.executable, "-m", module, *args], log=self.logs / log, stdin=stdin)
        self.processes.append(process)
        return process

    def forget(self, process: Process) -> None:
        """Kill `process` if it still runs and stop tracking it."""
        process.kill()
        with contextlib.suppress(ValueError):
            self.processes.remove(process)

    def publish_marker(self, container_id: str) -> None:
        self._publish(workload.marker(container_id), metadata=workload.PUBLISH_METADATA, timeout=10)

    def start_evactors(self, name: str) -> Evactors:
        """A fresh `evactors serve` on a socket of its own; returns once it streams events."""
        socket = self.workdir / f"evactors-{name}.sock"
        process = self.start(
            "evactors",
            "serve",
            "--containerd-address",
            self.containerd_address,
            "--listen",
            f"unix://{socket}",
            "--log-level",
            "warning",
            log=f"evactors-{name}.log",
        )
        evactors = Evactors(process, socket)
        deadline = time.monotonic() + 30
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"evactors exited with {process.popen.returncode}; see {process.log}"
                )
            with contextlib.suppress(grpc.RpcError):
                if socket.exists() and evactors.stats().containerd_connected:
                    return evactors
            if time.monotonic() > deadline:
                raise RuntimeError(f"evactors did not come up; see {process.log}")
            time.sleep(0.05)

    def stop_evactors(self, evactors: Evactors) -> None:
        evactors.stop()
        self.forget(evactors.process)
