"""Tests of the test bed itself: the image builder and the private containerd."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import tarfile
import time
from pathlib import Path
from uuid import uuid4

import pytest

from evactors.testing import (
    BUSYBOX_APPLETS,
    CtrError,
    ImageInfo,
    PrivateContainerd,
    build_busybox_image,
    find_shims,
    mounts_under,
    start_private_containerd,
    stop_private_containerd,
)

from .conftest import skip_or_fail

BUSYBOX = Path("/bin/busybox")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def _blobs(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out: dict[str, bytes] = {}
        for member in tar.getmembers():
            if member.isfile():
                fh = tar.extractfile(member)
                assert fh is not None
                out[member.name] = fh.read()
        return out


# --------------------------------------------------------------------------
# image builder (no containerd needed)


def test_image_is_deterministic_and_content_addressed(tmp_path: Path) -> None:
    if not BUSYBOX.is_file():
        skip_or_fail(f"{BUSYBOX} (busybox-static) is missing")  # a failure when CI=true
    one = build_busybox_image(tmp_path / "one.tar")
    two = build_busybox_image(tmp_path / "two.tar", name="docker.io/library/busybox:latest")
    assert (one.manifest_digest, one.config_digest, one.layer_digest, one.size) == (
        two.manifest_digest,
        two.config_digest,
        two.layer_digest,
        two.size,
    )
    assert one.path.read_bytes() == two.path.read_bytes()

    files = _blobs(one.path)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    blobs = {n: d for n, d in files.items() if n.startswith("blobs/sha256/")}
    for name, data in blobs.items():
        assert name.removeprefix("blobs/sha256/") == hashlib.sha256(data).hexdigest()
    assert one.size == sum(len(d) for d in blobs.values())

    def blob(digest: str) -> bytes:
        return blobs["blobs/sha256/" + digest.removeprefix("sha256:")]

    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["digest"] == one.manifest_digest
    assert entry["annotations"] == {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest",
    }
    manifest = json.loads(blob(one.manifest_digest))
    assert manifest["config"]["digest"] == one.config_digest
    assert [layer["digest"] for layer in manifest["layers"]] == [one.layer_digest]
    config = json.loads(blob(one.config_digest))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [one.layer_digest]}
    assert config["config"]["Cmd"] == ["sh"]
    assert config["os"] == "linux"

    with tarfile.open(fileobj=io.BytesIO(blob(one.layer_digest))) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/busybox"].size == BUSYBOX.stat().st_size
    for applet in BUSYBOX_APPLETS:
        assert members[f"bin/{applet}"].issym()
        assert members[f"bin/{applet}"].linkname == "busybox"
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())


# --------------------------------------------------------------------------
# the session containerd


def test_version(containerd: PrivateContainerd) -> None:
    assert containerd.version().startswith("1.")


def test_imported_image_is_listed(containerd: PrivateContainerd, busybox_image: ImageInfo) -> None:
    assert busybox_image.name in containerd.ctr("images", "ls", "-q").stdout.split()
    (line,) = [
        ln
        for ln in containerd.ctr("images", "ls").stdout.splitlines()
        if ln.startswith(busybox_image.name + " ")
    ]
    assert busybox_image.manifest_digest in line


def test_run_true_exits_0_and_is_removed(
    containerd: PrivateContainerd, busybox_image: ImageInfo, container_id: str
) -> None:
    done = containerd.run(
        busybox_image.name,
        container_id,
        "/bin/sh",
        "-c",
        "echo hi; /bin/true",
        labels={"nerdctl/name": "web"},
    )
    assert done.returncode == 0
    assert done.stdout == "hi\n"
    assert container_id not in containerd.containers()


def test_run_exit_code_is_passed_through(
    containerd: PrivateContainerd, busybox_image: ImageInfo, container_id: str
) -> None:
    done = containerd.run(busybox_image.name, container_id, "/bin/sh", "-c", "exit 3", check=False)
    assert done.returncode == 3
    with pytest.raises(CtrError) as info:
        containerd.run(busybox_image.name, container_id, "/bin/false")
    assert info.value.returncode == 1
    # a command that cannot start: ctr exits 1 and says why on stderr
    with pytest.raises(CtrError, match="no such file"):
        containerd.run(busybox_image.name, container_id, "/bin/nonexistent")


def test_detached_task_runs_until_deleted(
    containerd: PrivateContainerd, busybox_image: ImageInfo, container_id: str
) -> None:
    containerd.start_detached(busybox_image.name, container_id, "sleep", "1000")
    assert containerd.tasks()[container_id] == "RUNNING"
    listing = containerd.ctr("tasks", "ls").stdout.splitlines()
    assert listing[0].split() == ["TASK", "PID", "STATUS"]
    assert any(ln.split()[0] == container_id and ln.split()[2] == "RUNNING" for ln in listing[1:])

    containerd.delete_container(container_id)
    assert container_id not in containerd.tasks()
    assert container_id not in containerd.containers()
    containerd.delete_container(container_id)  # already gone: no error


def test_create_then_start_task(
    containerd: PrivateContainerd, busybox_image: ImageInfo, container_id: str
) -> None:
    containerd.create(busybox_image.name, container_id, "sleep", "1000", labels={"a": "b"})
    assert container_id in containerd.containers()
    assert container_id not in containerd.tasks()
    containerd.start_task(container_id)
    assert containerd.tasks()[container_id] == "RUNNING"
    # the container_id fixture kills and deletes it


# --------------------------------------------------------------------------
# a second private containerd: stopping it leaves nothing behind


@pytest.mark.parametrize("crash_first", [False, True], ids=["graceful", "after-crash"])
def test_stop_leaves_nothing_behind(
    containerd: PrivateContainerd,  # only to skip/fail without containerd
    busybox_image: ImageInfo,
    tmp_path: Path,
    crash_first: bool,
) -> None:
    ctd = start_private_containerd(tmp_path / "second")
    try:
        assert ctd.address.is_socket()
        ctd.import_image(busybox_image.path)
        cid = f"t-{uuid4().hex[:10]}"
        ctd.start_detached(busybox_image.name, cid, "sleep", "1000")
        ctd.run(busybox_image.name, f"{cid}-rm", "/bin/true")
        assert ctd.tasks()[cid] == "RUNNING"
        shims = find_shims(ctd)
        assert shims
        init_pid = int(
            (ctd.state / "io.containerd.runtime.v2.task/default" / cid / "init.pid").read_text(
                encoding="utf-8"
            )
        )
        assert _alive(init_pid)
        # containerd 1.6 puts shim sockets in /run/containerd/s/sha256(address/ns/id):
        # that /run is <dir>/run inside containerd's mount namespace, not the host's
        sock = hashlib.sha256(f"{ctd.address}/default/{cid}".encode()).hexdigest()
        assert (ctd.dir / "run/containerd/s" / sock).is_socket()
        assert not (Path("/run/containerd/s") / sock).exists()
        # the snapshotter's mounts live in containerd's private mount namespace
        assert mounts_under(ctd.dir, Path(f"/proc/{ctd.pid}/mountinfo"))
        assert not mounts_under(ctd.dir)
        if crash_first:
            os.kill(ctd.pid, signal.SIGKILL)
            time.sleep(0.1)
    finally:
        stop_private_containerd(ctd)

    assert not _alive(ctd.pid)
    assert not Path(f"/proc/{ctd.pid}").exists()  # reaped, not a zombie
    assert not any(_alive(pid) for pid in shims)
    assert not _alive(init_pid)
    assert find_shims(ctd) == []
    assert mounts_under(tmp_path) == []
    assert not ctd.dir.exists()
    stop_private_containerd(ctd)  # twice is fine


def test_long_base_dir_puts_sockets_in_short_dir(
    containerd: PrivateContainerd,  # only to skip/fail without containerd
    tmp_path: Path,
) -> None:
    base = tmp_path / ("d" * 60) / ("e" * 60)
    ctd = start_private_containerd(base)
    try:
        assert ctd.socket_dir is not None
        assert ctd.address.parent == ctd.socket_dir
        assert len(str(ctd.address)) < 100
        assert ctd.dir == base
        assert (base / "config.toml").is_file()
        assert ctd.version() == containerd.version()
    finally:
        stop_private_containerd(ctd)
    assert not base.exists()
    assert not ctd.socket_dir.exists()
