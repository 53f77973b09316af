"""Where things are by default: evactors' socket and containerd's."""

from __future__ import annotations

import os
from typing import Final

from .containerd import DEFAULT_ADDRESS as CONTAINERD_SOCKET

# As root; other users get one in their runtime folder.
SYSTEM_SOCKET: Final = "/run/evactors/evactors.sock"


def default_containerd_address() -> str:
    """`$CONTAINERD_ADDRESS`, as ctr and nerdctl read it, or containerd's own default."""
    return os.environ.get("CONTAINERD_ADDRESS") or CONTAINERD_SOCKET


def default_listen_address() -> str:
    """Where `evactors serve` listens and the clients connect, unless told otherwise.

    `$EVACTORS_ADDRESS` when set; else `unix:///run/evactors/evactors.sock` for root;
    else `unix://$XDG_RUNTIME_DIR/evactors/evactors.sock` (or, without a runtime
    folder, `/tmp/evactors-<uid>/evactors.sock`).
    """
    if address := os.environ.get("EVACTORS_ADDRESS"):
        return address
    if os.geteuid() == 0:
        return f"unix://{SYSTEM_SOCKET}"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/evactors-{os.geteuid()}"
    return f"unix://{runtime_dir}/evactors/evactors.sock"
