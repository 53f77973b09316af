"""The main job, end to end: a real container's events, as evactors relays them.

Uses the containerd at $CONTAINERD_ADDRESS (default /run/containerd/containerd.sock)
when one answers there, and otherwise starts a private one in a temporary folder. It
imports a busybox image built from /bin/busybox into namespace `evactors-demo`, runs a
container there and prints that container's events as `nerdctl events` does, until the
container is gone.

Run it through `bash scripts/demo`, which installs what it needs first.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Generator
from pathlib import Path

import trio

from evactors.containerd import (
    DEFAULT_ADDRESS,
    Unavailable,
    go_time_string,
    open_containerd,
    payload_json,
)
from evactors.testing import build_busybox_image, private_containerd

NAMESPACE = "evactors-demo"
IMAGE = "docker.io/library/busybox:latest"


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
        print(f"demo: using the containerd at {address}", file=sys.stderr)
        yield address
        return
    print(f"demo: no containerd answers at {address}; starting a private one", file=sys.stderr)
    with private_containerd(scratch / "containerd") as private:
        yield str(private.address)


def ctr(address: str, *args: str) -> None:
    subprocess.run(
        ["ctr", "-a", address, "-n", NAMESPACE, *args], check=True, stdout=subprocess.DEVNULL
    )


async def show_events(address: str, scratch: Path) -> None:
    container = f"demo-{uuid.uuid4().hex[:8]}"
    fifo_dir = scratch / "fifo"
    async with open_containerd(address) as client, client.subscribe() as events:
        # Give the subscription a moment to be registered: containerd keeps no history.
        await trio.sleep(0.2)
        print(f"demo: running container {container} in namespace {NAMESPACE}", file=sys.stderr)
        run = [
            "run", "--rm", "--fifo-dir", str(fifo_dir), "--label", "nerdctl/name=hello",
            IMAGE, container, "sh", "-c", "echo hello from busybox",
        ]  # fmt: skip
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, lambda: ctr(address, *run))
            with trio.fail_after(60):
                async for event in events:
                    if event.namespace != NAMESPACE:
                        continue
                    line = [go_time_string(event.timestamp), event.namespace, event.topic]
                    print(*line, payload_json(event.payload), flush=True)
                    if event.topic == "/containers/delete":
                        break


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="evactors-demo-") as scratch_dir:
        scratch = Path(scratch_dir)
        with containerd_for_demo(scratch) as address:
            image = build_busybox_image(scratch / "busybox.tar", name=IMAGE)
            ctr(address, "images", "import", str(image.path))
            trio.run(show_events, address, scratch)


if __name__ == "__main__":
    main()
