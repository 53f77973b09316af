"""The main job, end to end: a real container's events, through `evactors serve` and
`evactors events`.

Uses the containerd at $CONTAINERD_ADDRESS (default /run/containerd/containerd.sock)
when one answers there, and otherwise starts a private one in a temporary folder. It
imports a busybox image built from /bin/busybox into namespace `evactors-demo`, starts
`evactors serve` on a socket in the temporary folder, starts `evactors events` for that
namespace, runs a container there, and lets `evactors events` print the container's
events (as `nerdctl events` does) until the container is gone. Then it stops both.

Run it through `bash scripts/demo`, which installs what it needs first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Generator
from pathlib import Path

import trio

from evactors.containerd import DEFAULT_ADDRESS, RawPayload, Unavailable, open_containerd
from evactors.grpc import GrpcError
from evactors.rpc import open_system_client
from evactors.testing import build_busybox_image, private_containerd

NAMESPACE = "evactors-demo"
IMAGE = "docker.io/library/busybox:latest"
EVACTORS = [sys.executable, "-m", "evactors"]


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


async def answers(address: str) -> bool:
    try:
        with trio.move_on_after(3):
            async with open_containerd(address) as client:
                await client.version()
                return True
    except Unavailable:
        return False
    return False


@contextlib.contextmanager
def containerd_for_demo(scratch: Path) -> Generator[str, None, None]:
    address = os.environ.get("CONTAINERD_ADDRESS", DEFAULT_ADDRESS)
    if trio.run(answers, address):
        say(f"using the containerd at {address}")
        yield address
        return
    say(f"no containerd answers at {address}; starting a private one")
    with private_containerd(scratch / "containerd") as private:
        yield str(private.address)


def ctr(address: str, *args: str) -> None:
    subprocess.run(
        ["ctr", "-a", address, "-n", NAMESPACE, *args], check=True, stdout=subprocess.DEVNULL
    )


async def wait_until_relaying(containerd: str, evactors: str) -> None:
    """Until `evactors serve` answers and its containerd subscription delivers."""
    with trio.fail_after(30):
        while True:
            try:
                async with open_system_client(evactors) as client:
                    stats = (await client.info()).stats
                    if stats.events_received:
                        return
                    async with open_containerd(containerd) as ctd:
                        probe = RawPayload("evactors.DemoProbe", b"")
                        await ctd.publish("evactors-demo-probe", "/evactors/demo-probe", probe)
            except GrpcError:
                pass  # not listening yet
            await trio.sleep(0.05)


async def wait_until_subscribed(evactors: str) -> None:
    with trio.fail_after(30):
        async with open_system_client(evactors) as client:
            while not (await client.info()).stats.subscribers:  # ruff: ignore[async-busy-wait]
                await trio.sleep(0.05)


async def show_events(containerd: str, scratch: Path) -> None:
    socket = f"unix://{scratch / 'evactors.sock'}"
    container = f"demo-{uuid.uuid4().hex[:8]}"
    async with trio.open_nursery() as nursery:
        say(f"starting evactors serve on {socket}")
        serve = await trio.lowlevel.open_process(
            [*EVACTORS, "serve", "--containerd-address", containerd, "--listen", socket]
        )
        try:
            await wait_until_relaying(containerd, socket)
            say(f"starting evactors events --filter namespace={NAMESPACE}")
            events = await trio.lowlevel.open_process(
                [*EVACTORS, "events", "--address", socket, "--filter", f"namespace={NAMESPACE}"],
                stdout=subprocess.PIPE,
            )
            await wait_until_subscribed(socket)
            say(f"running container {container} in namespace {NAMESPACE}")
            run = [
                "run", "--rm", "--fifo-dir", str(scratch / "fifo"),
                "--label", "nerdctl/name=hello",
                IMAGE, container, "sh", "-c", "echo hello from busybox",
            ]  # fmt: skip
            nursery.start_soon(trio.to_thread.run_sync, lambda: ctr(containerd, *run))
            await relay_until_gone(events, container)
            events.send_signal(signal.SIGINT)
            await events.wait()
        finally:
            serve.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await serve.wait()
            serve.kill()


async def relay_until_gone(events: trio.Process, container: str) -> None:
    """Echo `evactors events`' lines until the container's /containers/delete."""
    assert events.stdout is not None
    buffer = b""
    with trio.fail_after(60):
        async for chunk in events.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode()
                print(text, flush=True)
                if " /containers/delete " in text and container in text:
                    return
    raise RuntimeError("evactors events ended before the container was gone")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="evactors-demo-") as scratch_dir:
        scratch = Path(scratch_dir)
        with containerd_for_demo(scratch) as address:
            image = build_busybox_image(scratch / "busybox.tar", name=IMAGE)
            ctr(address, "images", "import", str(image.path))
            trio.run(show_events, address, scratch)
            say("done")


if __name__ == "__main__":
    main()
