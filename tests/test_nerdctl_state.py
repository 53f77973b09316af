"""nerdctl's networks and volumes pruned as `nerdctl system prune [--volumes]` does.

A fake nerdctl state tree in `tmp_path` (CNI configurations and volume directories as
nerdctl writes them), the session's private containerd with containers carrying
nerdctl's labels in a namespace of the test's own, and `prune()` called directly.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import attrs
import pytest
import trio

from evactors.containerd import Container
from evactors.system import nerdctl
from evactors.system.nerdctl import (
    LabelError,
    NerdctlPaths,
    Volume,
    address_hash,
    data_store,
    read_networks,
    tree_size,
    used_networks,
    used_volumes,
)
from evactors.system.prune import PruneFilter, parse_prune_filters, prune
from evactors.testing import PrivateContainerd

# -- nerdctl's facts, without containerd ------------------------------------------------
from .conftest import skip_or_fail


def test_the_address_hash_is_nerdctls():
    # pkg/clientutil/client.go: `echo -n /run/containerd/containerd.sock | sha256sum`.
    assert address_hash("/run/containerd/containerd.sock") == "1935db59"
    assert address_hash("unix:///run/containerd/containerd.sock") == "1935db59"
    assert address_hash("tcp://127.0.0.1:1234") is None
    paths = NerdctlPaths(data_root="/srv/nerdctl")
    assert data_store(paths, "unix:///run/containerd/containerd.sock") == "/srv/nerdctl/1935db59"
    assert NerdctlPaths() == NerdctlPaths("/var/lib/nerdctl", "/etc/cni/net.d")


def test_the_address_hash_resolves_symlinks_as_nerdctl_does(tmp_path):
    real = tmp_path / "real" / "containerd.sock"
    real.parent.mkdir()
    real.touch()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    expected = hashlib.sha256(str(real).encode()).hexdigest()[:8]
    assert address_hash(f"unix://{tmp_path}/link/containerd.sock") == expected


def container(labels: dict[str, str], cid: str = "c1") -> Container:
    return Container(cid, "image", labels, "runc", "overlayfs", cid, 0, 0)


def test_used_networks_reads_the_networks_label():
    used = used_networks(
        [
            container({"nerdctl/networks": '["net-a"]'}),
            container({"nerdctl/networks": '["net-b", "host"]'}),
            container({}),
        ]
    )
    assert used == {"net-a", "net-b", "host"}
    with pytest.raises(LabelError, match="c9 has an unreadable nerdctl/networks"):
        used_networks([container({"nerdctl/networks": "net-a"}, "c9")])


def test_used_volumes_reads_mounts_whole_or_one_label_each():
    legacy = json.dumps(
        [
            {"Type": "volume", "Name": "v1", "Source": "/x/volumes/ns/v1/_data"},
            {"Type": "bind", "Source": "/srv/data", "Destination": "/data"},
        ]
    )
    used = used_volumes(
        [
            container({"nerdctl/mounts": legacy}),
            # newer nerdctl: one mount per label; Go's json matches keys case-insensitively
            container({"nerdctl/mounts/0": '{"type": "volume", "name": "v2"}'}),
            container({"nerdctl/anonymous-volumes": '["v3"]'}),
            container({"nerdctl/mounts": "null"}),
        ]
    )
    assert used.names == {"v1", "v2", "v3"}
    assert used.uses(Volume("v4", "/srv/data", {}, 0))  # bind-mounted by path
    assert not used.uses(Volume("v5", "/x/volumes/ns/v5", {}, 0))
    for bad in ({"nerdctl/mounts": "{"}, {"nerdctl/anonymous-volumes": '"v1"'}):
        with pytest.raises(LabelError):
            used_volumes([container(bad)])


def test_tree_size_counts_what_removal_frees(tmp_path):
    volume = tmp_path / "v"
    (volume / "_data" / "sub").mkdir(parents=True)
    (volume / "_data" / "a").write_bytes(b"x" * 1000)
    (volume / "_data" / "sub" / "b").write_bytes(b"y" * 24)
    os.link(volume / "_data" / "a", volume / "_data" / "a-again")  # counted once
    (tmp_path / "outside").write_bytes(b"z" * 500)
    os.link(tmp_path / "outside", volume / "_data" / "shared")  # stays on disk: not counted
    (volume / "_data" / "link").symlink_to(tmp_path / "outside")
    assert tree_size(str(volume)) == 1024


# -- a fake nerdctl state tree ------------------------------------------------------------


@attrs.frozen
class FakeNerdctl:
    """nerdctl's files under `root`, for the containerd at `address`."""

    root: Path
    address: str

    @property
    def paths(self) -> NerdctlPaths:
        return NerdctlPaths(str(self.root / "lib"), str(self.netconf))

    @property
    def netconf(self) -> Path:
        return self.root / "net.d"

    @property
    def store(self) -> Path:
        return Path(data_store(self.paths, self.address) or "")

    def network(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        namespace: str | None = None,
        bridge: str | None = None,
        by_nerdctl: bool = True,
    ) -> Path:
        """A network as `nerdctl network create` writes it (nerdctl-NAME.conflist)."""
        config: dict[str, object] = {"cniVersion": "1.0.0", "name": name}
        if by_nerdctl:
            config["nerdctlID"] = hashlib.sha256(name.encode()).hexdigest()
            config["nerdctlLabels"] = labels or {}
        config["plugins"] = [
            {"type": "bridge", "bridge": bridge or f"br-{uuid4().hex[:8]}", "ipam": {}},
            {"type": "firewall"},
        ]
        directory = self.netconf / namespace if namespace else self.netconf
        directory.mkdir(parents=True, exist_ok=True)
        file = directory / f"nerdctl-{name}.conflist"
        file.write_text(json.dumps(config, indent=2))
        return file

    def volume(
        self,
        namespace: str,
        name: str,
        *,
        anonymous: bool = False,
        labels: dict[str, str] | None = None,
        size: int = 0,
    ) -> Path:
        """A volume as nerdctl's volume store writes it: `_data/` and `volume.json`
        (`nerdctl volume create` without a name labels it anonymous; `run -v /path`
        leaves no label)."""
        path = self.store / "volumes" / namespace / name
        (path / "_data").mkdir(parents=True)
        all_labels = dict(labels or {})
        if anonymous:
            all_labels["nerdctl/anonymous-volumes"] = ""
        document = {"labels": all_labels or None}
        (path / "volume.json").write_text(json.dumps(document, indent=4))
        (path / "_data" / "content").write_bytes(b"v" * size)
        return path


@pytest.fixture
def fake(tmp_path, containerd) -> FakeNerdctl:
    fake = FakeNerdctl(tmp_path, f"unix://{containerd.address}")
    fake.store.mkdir(parents=True)
    fake.netconf.mkdir()
    return fake


@attrs.frozen
class Namespace:
    containerd: PrivateContainerd
    name: str
    image: str

    async def container(self, labels: dict[str, str], *, running: bool = False) -> str:
        """A container with nerdctl's labels: running (it stays), or created and never
        started (stopped: the prune removes it)."""
        cid = f"n-{uuid4().hex[:10]}"
        make = self.containerd.start_detached if running else self.containerd.create
        await trio.to_thread.run_sync(
            functools.partial(
                make, self.image, cid, "sleep", "1000", labels=labels, namespace=self.name
            )
        )
        return cid

    async def containers(self) -> set[str]:
        return set(await trio.to_thread.run_sync(self.containerd.containers, self.name))


def make_namespace(containerd: PrivateContainerd, image_path: Path, image: str) -> Namespace:
    name = f"nc-{uuid4().hex[:8]}"
    containerd.import_image(image_path, namespace=name)
    return Namespace(containerd, name, image)


@pytest.fixture
def ns(containerd, busybox_image) -> Iterator[Namespace]:
    """A fresh namespace with the busybox image: the one pruned."""
    namespace = make_namespace(containerd, busybox_image.path, busybox_image.name)
    yield namespace
    containerd.remove_namespace(namespace.name)


@pytest.fixture
def other(containerd, busybox_image) -> Iterator[Namespace]:
    """Another fresh namespace, not pruned."""
    namespace = make_namespace(containerd, busybox_image.path, busybox_image.name)
    yield namespace
    containerd.remove_namespace(namespace.name)


async def run_prune(ctd_client, ns: Namespace, fake: FakeNerdctl, *filters: str, **options):
    prune_filter = parse_prune_filters(filters, now_ns=time.time_ns()) if filters else None
    return await prune(
        ctd_client,
        ns.name,
        prune_filter or PruneFilter(),
        nerdctl_paths=fake.paths,
        **options,
    )


def networks_label(*names: str) -> dict[str, str]:
    return {"nerdctl/networks": json.dumps(list(names))}


def mounts_label(*volumes: str) -> dict[str, str]:
    mounts = [
        {"Type": "volume", "Name": v, "Source": f"/x/{v}/_data", "Destination": f"/{v}"}
        for v in volumes
    ]
    return {"nerdctl/mounts": json.dumps(mounts)}


def exists(*paths: Path) -> list[bool]:
    return [path.exists() for path in paths]


# -- networks -----------------------------------------------------------------------------


async def test_unused_networks_go_and_used_and_default_ones_stay(ctd_client, ns, other, fake):
    unused = fake.network("unused")
    unused_here = fake.network("unused-here", namespace=ns.name)
    elsewhere = fake.network("elsewhere", namespace=other.name)  # not this namespace's
    running = fake.network("by-running")
    by_other = fake.network("by-other-namespace")
    by_pruned = fake.network("by-pruned")
    default = fake.network("bridge")
    labelled_default = fake.network("mydefault", labels={"nerdctl/default-network": "true"})
    foreign = fake.network("foreign", by_nerdctl=False)
    (fake.netconf / "README.json").write_text("not json")
    keeper = await ns.container(networks_label("by-running"), running=True)
    # A container that was never started, in another namespace, still uses its network.
    await other.container(networks_label("by-other-namespace"))
    pruned = await ns.container(networks_label("by-pruned"))

    report = await run_prune(ctd_client, ns, fake)

    assert report.containers_deleted == [pruned]
    assert sorted(report.networks_deleted) == ["by-pruned", "unused", "unused-here"]
    assert report.errors == []
    assert exists(unused, unused_here, by_pruned) == [False] * 3
    assert all(exists(elsewhere, running, by_other, default, labelled_default, foreign))
    assert await ns.containers() == {keeper}


async def test_a_network_named_by_its_id_is_in_use(ctd_client, ns, fake):
    file = fake.network("by-id")
    network_id = hashlib.sha256(b"by-id").hexdigest()
    await ns.container(networks_label(network_id[:12]), running=True)
    report = await run_prune(ctd_client, ns, fake)
    assert report.networks_deleted == []
    assert file.exists()


async def test_an_unreadable_networks_label_prunes_no_network(ctd_client, ns, fake):
    file = fake.network("unused")
    cid = await ns.container({"nerdctl/networks": "bridge"}, running=True)
    report = await run_prune(ctd_client, ns, fake)
    assert report.networks_deleted == []
    assert report.errors == [
        f"networks: container {cid} has an unreadable nerdctl/networks label 'bridge'; "
        "no network was pruned"
    ]
    assert file.exists()


async def test_filters_apply_to_networks_and_volumes(ctd_client, ns, fake):
    kept = fake.network("kept", labels={"keep": "yes"})
    gone = fake.network("gone")
    kept_volume = fake.volume(ns.name, "kept", anonymous=True, labels={"keep": "yes"})
    gone_volume = fake.volume(ns.name, "gone", anonymous=True)
    report = await run_prune(ctd_client, ns, fake, "label!=keep", volumes=True)
    assert (report.networks_deleted, report.volumes_deleted) == (["gone"], ["gone"])
    assert exists(kept, gone, kept_volume, gone_volume) == [True, False, True, False]


# -- volumes ------------------------------------------------------------------------------


async def test_unused_anonymous_volumes_go_with_their_bytes(ctd_client, ns, other, fake):
    anonymous = fake.volume(ns.name, "anon-unused", anonymous=True, size=1000)
    used = fake.volume(ns.name, "anon-used", anonymous=True, size=10)
    named = fake.volume(ns.name, "named", size=10)
    # `run -v /data` leaves no label on the volume; the container's label names it.
    of_pruned = fake.volume(ns.name, "of-pruned", size=24)
    of_kept = fake.volume(ns.name, "of-kept", size=10)
    other_namespace = fake.volume(other.name, "anon-elsewhere", anonymous=True)
    labels = {**mounts_label("anon-used"), "nerdctl/anonymous-volumes": '["of-kept"]'}
    await ns.container(labels, running=True)
    await ns.container({"nerdctl/anonymous-volumes": '["of-pruned"]', **mounts_label("named")})

    report = await run_prune(ctd_client, ns, fake, volumes=True)

    assert report.volumes_deleted == ["anon-unused", "of-pruned"]
    assert report.space_reclaimed == 1024  # nothing else went: the image is in use
    assert report.errors == []
    assert exists(anonymous, of_pruned) == [False, False]
    assert all(exists(used, named, of_kept, other_namespace))


async def test_without_volumes_no_volume_is_touched(ctd_client, ns, fake):
    volume = fake.volume(ns.name, "anon", anonymous=True, size=10)
    network = fake.network("unused")
    report = await run_prune(ctd_client, ns, fake)
    assert (report.networks_deleted, report.volumes_deleted) == (["unused"], [])
    assert report.space_reclaimed == 0
    assert volume.exists()
    assert not network.exists()


async def test_a_dry_run_lists_what_a_real_run_removes_and_removes_nothing(ctd_client, ns, fake):
    volume = fake.volume(ns.name, "anon", anonymous=True, size=10)
    of_pruned = fake.volume(ns.name, "of-pruned")
    network = fake.network("unused")
    by_pruned = fake.network("by-pruned")
    pruned = await ns.container(
        {
            "nerdctl/anonymous-volumes": '["of-pruned"]',
            **networks_label("by-pruned"),
        }
    )

    dry = await run_prune(ctd_client, ns, fake, volumes=True, dry_run=True)
    assert all(exists(volume, of_pruned, network, by_pruned))
    assert await ns.containers() == {pruned}

    real = await run_prune(ctd_client, ns, fake, volumes=True)
    assert (dry.networks_deleted, dry.volumes_deleted) == (
        real.networks_deleted,
        real.volumes_deleted,
    )
    assert sorted(real.networks_deleted) == ["by-pruned", "unused"]
    assert real.volumes_deleted == ["anon", "of-pruned"]
    assert dry.space_reclaimed == 0
    assert real.space_reclaimed == 10
    assert dry.errors == real.errors == []


# -- where nerdctl's state is missing, or cannot be changed ------------------------------


async def test_no_nerdctl_state_means_nothing_to_do_and_nothing_said(ctd_client, ns, tmp_path):
    nowhere = FakeNerdctl(tmp_path / "none", ctd_client.address)
    report = await run_prune(ctd_client, ns, nowhere, volumes=True)
    assert (report.networks_deleted, report.volumes_deleted, report.errors) == ([], [], [])


async def test_networks_of_a_containerd_nerdctl_never_used_stay(ctd_client, ns, fake):
    # The netconf directory is the host's; without a data store for this containerd,
    # this prune cannot see the containers that use those networks.
    network = fake.network("unused")
    shutil.rmtree(fake.store)
    report = await run_prune(ctd_client, ns, fake, volumes=True)
    assert (report.networks_deleted, report.errors) == ([], [])
    assert network.exists()


async def test_a_data_store_without_networks_or_volumes_is_nothing_to_do(ctd_client, ns, fake):
    fake.netconf.rmdir()
    report = await run_prune(ctd_client, ns, fake, volumes=True)
    assert (report.networks_deleted, report.volumes_deleted, report.errors) == ([], [], [])


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Files made immutable (`chattr +i`: not even root removes them) for the test."""
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


async def test_a_volume_that_cannot_be_removed_is_one_error_and_the_rest_go(
    ctd_client, ns, fake, immutable
):
    stuck = fake.volume(ns.name, "anon-stuck", anonymous=True, size=10)
    free = fake.volume(ns.name, "anon-free", anonymous=True, size=10)
    pinned = stuck / "_data" / "content"
    if shutil.which("chattr") is None:
        skip_or_fail("chattr is missing (e2fsprogs)")
    chattr = functools.partial(subprocess.run, ["chattr", "+i", str(pinned)], check=False)
    if (await trio.to_thread.run_sync(chattr)).returncode:
        skip_or_fail("this file system has no immutable files")
    immutable.append(pinned)

    report = await run_prune(ctd_client, ns, fake, volumes=True)

    assert report.volumes_deleted == ["anon-free"]
    assert len(report.errors) == 1
    assert report.errors[0].startswith("volume anon-stuck: [Errno 1] Operation not permitted")
    assert report.space_reclaimed == 10
    assert not free.exists()
    assert (stuck / "volume.json").exists()  # still a volume nerdctl can list


async def test_a_volume_store_nerdctl_holds_locked_is_one_error(ctd_client, ns, fake, monkeypatch):
    monkeypatch.setattr(nerdctl, "LOCK_TIMEOUT", 0.2)
    volume = fake.volume(ns.name, "anon", anonymous=True)
    network = fake.network("unused")
    store = volume.parent
    fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        report = await run_prune(ctd_client, ns, fake, volumes=True)
    finally:
        os.close(fd)
    assert report.volumes_deleted == []
    assert report.errors == [
        f"volumes: {store} stayed locked (by nerdctl?) for 0.2s; no volume was pruned"
    ]
    assert report.networks_deleted == ["unused"]
    assert volume.exists()
    assert not network.exists()


def test_read_networks_sees_the_namespace_directory_and_the_shared_one(tmp_path):
    fake = FakeNerdctl(tmp_path, "unix:///nowhere.sock")
    fake.network("shared")
    fake.network("mine", namespace="ns1")
    fake.network("theirs", namespace="ns2")
    fake.network("plain", by_nerdctl=False, bridge="cni0")
    (fake.netconf / "ns1" / "ignored.txt").write_text("{}")
    networks = {n.name: n for n in read_networks(str(fake.netconf), "ns1")}
    assert sorted(networks) == ["mine", "plain", "shared"]
    assert networks["plain"].nerdctl_id is None
    assert networks["plain"].bridge == "cni0"
    assert networks["mine"].nerdctl_id == hashlib.sha256(b"mine").hexdigest()


# -- the bridge interface, in a network namespace of its own --------------------------------

BRIDGE_SCRIPT = """
import json, sys, trio
from evactors.containerd import open_containerd
from evactors.system.nerdctl import NerdctlPaths
from evactors.system.prune import PruneFilter, prune

async def main(address, namespace, data_root, netconf):
    async with open_containerd(address) as client:
        report = await prune(
            client, namespace, PruneFilter(), nerdctl_paths=NerdctlPaths(data_root, netconf)
        )
    print(json.dumps([report.networks_deleted, report.errors]))

trio.run(main, *sys.argv[1:])
"""


async def test_a_removed_network_takes_its_bridge_with_it(containerd, ns, fake, tmp_path):
    """In a network namespace of its own (with its own /sys): three interfaces, three
    networks. Only the unused network's bridge goes; a non-bridge interface stays."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        skip_or_fail("unshare or ip is missing (util-linux, iproute2)")
    fake.network("unused", bridge="ntbr0")
    fake.network("not-bridge", bridge="ntveth0")
    used = fake.network("used", bridge="ntbr1")
    await ns.container(networks_label("used"), running=True)
    script = tmp_path / "prune_here.py"
    script.write_text(BRIDGE_SCRIPT)
    shell = textwrap.dedent(
        f"""
        set -e
        mount -t sysfs sysfs /sys
        ip link add ntbr0 type bridge
        ip link add ntbr1 type bridge
        ip link add ntveth0 type veth peer name ntveth1
        {sys.executable} {script} unix://{containerd.address} {ns.name} \\
            {fake.paths.data_root} {fake.paths.cni_netconf_path}
        ip -o link show
        """
    )
    run = functools.partial(
        subprocess.run, ["unshare", "-nm", "sh", "-c", shell], capture_output=True, text=True
    )
    result = await trio.to_thread.run_sync(run)
    if result.returncode and ("mount:" in result.stderr or "unshare:" in result.stderr):
        skip_or_fail(f"no network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    first, *links = result.stdout.splitlines()
    deleted, errors = json.loads(first)
    assert sorted(deleted) == ["not-bridge", "unused"]
    assert errors == []
    names = {line.split(":")[1].strip().split("@")[0] for line in links}
    assert names == {"lo", "ntbr1", "ntveth0", "ntveth1"}
    assert used.exists()
