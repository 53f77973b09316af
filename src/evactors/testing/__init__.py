"""Test helpers for evactors (in the spirit of :mod:`trio.testing`).

A real, private containerd to relay events from, and a locally built busybox
image to run containers with (no registry needed):

* :func:`build_busybox_image` writes a deterministic OCI image tarball;
* :func:`start_private_containerd` / :func:`stop_private_containerd` (or the
  :func:`private_containerd` context manager) run a containerd that keeps all
  its files, sockets and mounts in one directory and leaves nothing behind;
* :func:`containerd_available` says whether that can work on this machine.
"""

from ._containerd import (
    CtrError,
    PrivateContainerd,
    containerd_available,
    find_shims,
    mounts_under,
    private_containerd,
    start_private_containerd,
    stop_private_containerd,
)
from ._oci_image import BUSYBOX_APPLETS, ImageInfo, build_busybox_image

__all__ = [
    "BUSYBOX_APPLETS",
    "CtrError",
    "ImageInfo",
    "PrivateContainerd",
    "build_busybox_image",
    "containerd_available",
    "find_shims",
    "mounts_under",
    "private_containerd",
    "start_private_containerd",
    "stop_private_containerd",
]
