"""Shared fixtures: a private containerd for the session and a busybox image in it.

Tests that need containerd take the ``containerd`` fixture (directly or through
``busybox_image`` / ``container_id``); they are marked ``containerd``
automatically, so ``-m "not containerd"`` deselects them. Without a usable
containerd they are skipped, or failed when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from evactors.containerd import ContainerdClient, open_containerd
from evactors.daemon import RunningDaemon
from evactors.rpc import SystemClient, open_system_client
from evactors.testing import (
    ImageInfo,
    PrivateContainerd,
    build_busybox_image,
    containerd_available,
    private_containerd,
)

from ._evactors_helpers import running_evactors, wait_until_live

BUSYBOX = Path("/bin/busybox")


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it on CI (``CI=true``) where it must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "containerd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.containerd)


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateContainerd]:
    """A private containerd shared by the whole session, stopped (with all its
    containers, shims and mounts) at the end."""
    reason = containerd_available()
    if reason is not None:
        skip_or_fail(reason)
    with private_containerd(tmp_path_factory.mktemp("containerd")) as ctd:
        yield ctd


@pytest.fixture(scope="session")
def busybox_image(
    containerd: PrivateContainerd, tmp_path_factory: pytest.TempPathFactory
) -> ImageInfo:
    """The busybox image, built once and imported into namespace "default" of
    the session containerd; ``.name`` is what to pass to ``run``."""
    if not BUSYBOX.is_file():
        skip_or_fail(f"{BUSYBOX} (busybox-static) is missing")
    image = build_busybox_image(tmp_path_factory.mktemp("image") / "busybox.tar")
    containerd.import_image(image.path, namespace="default")
    return image


@pytest.fixture
def container_id(containerd: PrivateContainerd) -> Iterator[str]:
    """A fresh container id; that container (and its task) is deleted after the
    test if it still exists in namespace "default"."""
    cid = f"t-{uuid4().hex[:10]}"
    yield cid
    containerd.delete_container(cid, namespace="default")


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[str]:
    """A unix socket path for the test (short enough for AF_UNIX: 108 bytes)."""
    path = str(tmp_path / "s.sock")
    if len(path) < 100:
        yield path
        return
    short = tempfile.mkdtemp(prefix="evactors-")
    yield os.path.join(short, "s.sock")
    shutil.rmtree(short)


@pytest.fixture
async def ctd_client(containerd: PrivateContainerd) -> AsyncIterator[ContainerdClient]:
    """The project's own client of the session containerd."""
    async with open_containerd(str(containerd.address)) as client:
        yield client


@pytest.fixture
async def evactors(
    containerd: PrivateContainerd, socket_path: str, ctd_client: ContainerdClient
) -> AsyncIterator[RunningDaemon]:
    """`evactors serve` on the session containerd, in this trio run, known to relay."""
    async with running_evactors(str(containerd.address), socket_path) as daemon:
        await wait_until_live(daemon, ctd_client)
        yield daemon


@pytest.fixture
async def client(evactors: RunningDaemon) -> AsyncIterator[SystemClient]:
    """A gRPC client of the `evactors` fixture's server, over its unix socket."""
    async with open_system_client(evactors.addresses[0]) as client:
        yield client
