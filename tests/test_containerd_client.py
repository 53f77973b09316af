"""End to end: the containerd adapter's calls against a real, private containerd, each
checked against what `ctr` reports; typed errors; what the transport does when calls are
cancelled, time out, or lose their connection."""

from __future__ import annotations

import os
import re
import signal
from uuid import uuid4

import pytest
import trio

from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors.containerd import (
    ContainerdClient,
    FailedPrecondition,
    NotFound,
    Task,
    TaskStatus,
    Unavailable,
    open_containerd,
)
from evactors.grpc import GrpcError, StatusCode
from evactors.testing import private_containerd

from ._ctd_helpers import wait_until_live

CONTENT_BLOBS = "root/io.containerd.content.v1.content/blobs/sha256"


@pytest.fixture
def new_container_id(containerd):
    """Makes fresh container ids; each such container (and its task) in namespace
    "default" is deleted after the test."""
    made = []

    def new():
        made.append(f"t-{uuid4().hex[:10]}")
        return made[-1]

    yield new
    for cid in made:
        containerd.delete_container(cid, namespace="default")


async def wait_for_status(client: ContainerdClient, container_id: str, status: TaskStatus) -> Task:
    """Poll the task until it has `status`; fail after 5 s."""
    with trio.fail_after(5):
        while True:
            task = await client.task("default", container_id)
            if task.status == status:
                return task
            await trio.sleep(0.01)


async def collect_garbage(client: ContainerdClient, containerd, image: str, namespace: str) -> None:
    """Have containerd collect its garbage now, by deleting a throw-away tag with sync.

    An import leaves garbage for a moment: `ctr images import` stores the tarball's
    index blob too, held only by the import's lease, and the next collection removes it.
    """
    tag = f"example.com/evactors/gc:{uuid4().hex[:8]}"
    containerd.ctr("images", "tag", image, tag, namespace=namespace)
    await client.delete_image(namespace, tag, sync=True)


def ctr_tasks(containerd, namespace="default"):
    """{container id: (pid, status)} from `ctr tasks ls`."""
    rows = containerd.ctr("tasks", "ls", namespace=namespace).stdout.splitlines()[1:]
    return {cid: (int(pid), status) for cid, pid, status in (row.split() for row in rows)}


def ctr_snapshot_keys(containerd, namespace="default"):
    rows = containerd.ctr("snapshots", "ls", namespace=namespace).stdout.splitlines()[1:]
    return {row.split()[0] for row in rows}


def ctr_content(containerd, namespace="default"):
    """{digest: labels} from `ctr content ls` (labels `k=v,k=v` in no fixed order)."""
    rows = containerd.ctr("content", "ls", namespace=namespace).stdout.splitlines()[1:]
    listed = {}
    for row in rows:
        fields = row.split("\t")
        labels = fields[-1].strip()
        listed[fields[0]] = dict(kv.split("=", 1) for kv in labels.split(",")) if labels else {}
    return listed


async def test_version_is_what_ctr_reports(containerd):
    async with open_containerd(str(containerd.address)) as client:
        version = await client.version()
        uuid = await client.server_uuid()
    assert version.version == containerd.version()
    ctr_version = containerd.ctr("version").stdout
    assert f"Revision: {version.revision}" in ctr_version.split("Server:")[1]
    assert f"UUID: {uuid}" in ctr_version


async def test_plugins_are_what_ctr_plugins_ls_lists(containerd):
    async with open_containerd(str(containerd.address)) as client:
        plugins = await client.plugins()
    # TYPE  ID  PLATFORMS  STATUS, columns separated by runs of spaces.
    rows = containerd.ctr("plugins", "ls").stdout.splitlines()[1:]
    expected = set()
    for row in rows:
        fields = re.split(r"\s+", row.strip())
        expected.add((fields[0], fields[1], fields[-1]))
    assert {(p.type, p.id, p.status) for p in plugins} == expected
    statuses = {(p.type, p.id): p.status for p in plugins}
    assert statuses["io.containerd.snapshotter.v1", "overlayfs"] == "ok"
    assert statuses.get(("io.containerd.grpc.v1", "cri")) in {None, "skip", "error"}
    assert all(p.init_error for p in plugins if p.status != "ok")


async def test_namespaces_are_what_ctr_lists(containerd, busybox_image):
    containerd.ctr("namespaces", "create", "evactors-ns-test")
    try:
        async with open_containerd(str(containerd.address)) as client:
            names = [n.name for n in await client.namespaces()]
        listed_by_ctr = containerd.namespaces()
    finally:
        containerd.ctr("namespaces", "remove", "evactors-ns-test")
    assert sorted(names) == sorted(listed_by_ctr)
    assert {"default", "evactors-ns-test"} <= set(names)


async def test_containers_and_images_are_listed_with_their_details(
    containerd, busybox_image, container_id
):
    containerd.create(busybox_image.name, container_id, "sleep", "1", labels={"nerdctl/name": "db"})
    async with open_containerd(str(containerd.address)) as client:
        containers = {c.id: c for c in await client.containers("default")}
        single = await client.container("default", container_id)
        images = {i.name: i for i in await client.images("default")}
        filtered = await client.containers("default", [f"id=={container_id}"])
        elsewhere = await client.containers("no-such-namespace")
    assert set(containers) == set(containerd.containers())
    record = containers[container_id]
    assert record == single
    assert record.image == busybox_image.name
    assert record.labels["nerdctl/name"] == "db"
    assert record.runtime == "io.containerd.runc.v2"
    assert (record.snapshotter, record.snapshot_key) == ("overlayfs", container_id)
    assert record.created_at > 1_600_000_000 * 10**9
    assert [c.id for c in filtered] == [container_id]
    assert elsewhere == []
    image = images[busybox_image.name]
    assert image.target_digest == busybox_image.manifest_digest
    assert image.target_media_type == "application/vnd.oci.image.manifest.v1+json"


async def test_containers_by_id_filters_are_ored(containerd, busybox_image, ctd_client):
    # The converter looks up a batch of new containers with one such call.
    namespace = f"ids-{uuid4().hex[:8]}"
    ids = [f"c{n}-{uuid4().hex[:6]}" for n in range(3)]
    await trio.to_thread.run_sync(
        lambda: containerd.import_image(busybox_image.path, namespace=namespace)
    )
    for container_id in ids:
        await trio.to_thread.run_sync(
            lambda cid=container_id: containerd.create(
                busybox_image.name, cid, "true", namespace=namespace
            )
        )
    try:
        wanted = [ids[0], ids[2], "no-such-container"]
        found = await ctd_client.containers(namespace, [f'id=="{i}"' for i in wanted])
        assert sorted(c.id for c in found) == sorted([ids[0], ids[2]])
    finally:
        for container_id in ids:
            containerd.delete_container(container_id, namespace=namespace)


async def test_a_missing_container_raises_not_found(containerd):
    async with open_containerd(str(containerd.address)) as client:
        with pytest.raises(NotFound, match="no-such-container") as caught:
            await client.container("default", "no-such-container")
        # The connection is still good after an error status.
        assert (await client.version()).version
    assert caught.value.code == StatusCode.NOT_FOUND


async def test_an_unreachable_socket_raises_unavailable_naming_it(tmp_path):
    socket = tmp_path / "nothing.sock"
    with trio.fail_after(10), pytest.raises(Unavailable, match=re.escape(str(socket))):
        async with open_containerd(str(socket)):
            pass


async def test_leaving_a_subscription_resets_its_stream_and_keeps_the_connection(containerd):
    async with open_containerd(str(containerd.address)) as client:
        connection = client._channel._connection
        for _ in range(3):
            async with client.subscribe() as events:
                await wait_until_live(client, events)
                assert len(connection.streams) == 1
            assert connection.streams == {}
        assert (await client.version()).version


async def test_a_cancelled_subscription_is_reset_at_once(containerd):
    async with open_containerd(str(containerd.address)) as client:
        connection = client._channel._connection
        with trio.move_on_after(0.3) as scope:
            async with client.subscribe() as events:
                async for _ in events:
                    pass
        assert scope.cancelled_caught
        assert connection.streams == {}
        assert (await client.version()).version


async def test_a_call_past_its_deadline_fails_with_deadline_exceeded(containerd):
    async def drain(events):
        async for _ in events:
            pass

    async with open_containerd(str(containerd.address)) as client:
        channel = client._channel
        async with channel.unary_stream(
            "/containerd.services.events.v1.Events/Subscribe",
            events_pb2.SubscribeRequest(filters=['topic=="/never/published"']),
            events_pb2.Envelope,
            timeout=0.2,
        ) as events:
            with pytest.raises(GrpcError) as caught:
                await drain(events)
        assert caught.value.code == StatusCode.DEADLINE_EXCEEDED
        assert channel._connection.streams == {}


async def test_a_subscription_fails_with_unavailable_when_containerd_dies(tmp_path):
    with private_containerd(tmp_path / "ctd") as doomed:
        async with open_containerd(str(doomed.address)) as client:
            async with client.subscribe() as events:
                await wait_until_live(client, events)
                os.kill(doomed.pid, signal.SIGKILL)
                with trio.fail_after(10), pytest.raises(Unavailable):
                    async for _ in events:
                        pass
            assert not client.connected
            with pytest.raises(Unavailable):
                await client.version()


async def test_tasks_are_what_ctr_tasks_ls_lists(containerd, busybox_image, new_container_id):
    running, stopped, created = new_container_id(), new_container_id(), new_container_id()
    containerd.start_detached(busybox_image.name, running, "sleep", "1000")
    containerd.start_detached(busybox_image.name, stopped, "sleep", "1000")
    containerd.create(busybox_image.name, created, "sleep", "1000")
    containerd.ctr("tasks", "kill", "-s", "SIGKILL", stopped)
    async with open_containerd(str(containerd.address)) as client:
        dead = await wait_for_status(client, stopped, TaskStatus.STOPPED)
        tasks = {t.container_id: t for t in await client.tasks("default")}
        single = await client.task("default", running)
        listed_by_ctr = ctr_tasks(containerd)
        elsewhere = await client.tasks("no-such-namespace")
    assert {cid: (t.pid, t.status.name) for cid, t in tasks.items()} == listed_by_ctr
    assert tasks[running] == single
    assert single.status is TaskStatus.RUNNING
    assert single.pid > 1
    assert (single.exit_status, single.exited_at) == (0, 0)
    assert tasks[stopped] == dead
    assert dead.exit_status == 128 + signal.SIGKILL
    assert dead.exited_at > 1_600_000_000 * 10**9
    # A container that was only created has no task.
    assert created not in tasks
    assert elsewhere == []


async def test_a_container_without_a_task_raises_not_found(containerd, busybox_image, container_id):
    containerd.create(busybox_image.name, container_id, "true")
    async with open_containerd(str(containerd.address)) as client:
        with pytest.raises(NotFound, match=container_id):
            await client.task("default", container_id)
        with pytest.raises(NotFound, match="no-such-container"):
            await client.task("default", "no-such-container")
        with pytest.raises(NotFound):
            await client.delete_task("default", container_id)


async def test_a_running_task_and_its_container_are_not_deleted(
    containerd, busybox_image, container_id
):
    containerd.start_detached(busybox_image.name, container_id, "sleep", "1000")
    async with open_containerd(str(containerd.address)) as client:
        # The runc shim answers UNKNOWN; the message tells it apart.
        with pytest.raises(FailedPrecondition, match="running") as caught:
            await client.delete_task("default", container_id)
        assert caught.value.code == StatusCode.UNKNOWN
        # containerd would delete the record under a running task; the client refuses.
        with pytest.raises(FailedPrecondition, match="RUNNING"):
            await client.delete_container("default", container_id)
        assert (await client.task("default", container_id)).status is TaskStatus.RUNNING
        assert (await client.container("default", container_id)).id == container_id


async def test_a_stopped_task_its_snapshot_and_its_container_are_deleted(
    containerd, busybox_image, container_id
):
    containerd.start_detached(busybox_image.name, container_id, "sleep", "1000")
    containerd.ctr("tasks", "kill", "-s", "SIGKILL", container_id)
    async with open_containerd(str(containerd.address)) as client:
        await wait_for_status(client, container_id, TaskStatus.STOPPED)
        with pytest.raises(FailedPrecondition, match="STOPPED"):
            await client.delete_container("default", container_id)
        exit_status = await client.delete_task("default", container_id)
        with pytest.raises(NotFound):
            await client.task("default", container_id)
        record = await client.container("default", container_id)
        # The snapshot first: without a container referring to it, garbage collection
        # may remove it at any moment.
        await client.remove_snapshot("default", record.snapshotter, record.snapshot_key)
        await client.delete_container("default", container_id)
        with pytest.raises(NotFound):
            await client.remove_snapshot("default", record.snapshotter, record.snapshot_key)
        with pytest.raises(NotFound):
            await client.delete_container("default", container_id)
    assert exit_status == 128 + signal.SIGKILL
    assert container_id not in containerd.containers()
    assert container_id not in containerd.tasks()
    assert record.snapshot_key not in ctr_snapshot_keys(containerd)


async def test_snapshot_usage_counts_what_the_container_writes(
    containerd, busybox_image, container_id
):
    containerd.create(busybox_image.name, container_id, "sleep", "1000")
    async with open_containerd(str(containerd.address)) as client:
        record = await client.container("default", container_id)
        fresh = await client.snapshot_usage("default", record.snapshotter, record.snapshot_key)
        containerd.start_task(container_id)
        containerd.ctr(
            "tasks",
            "exec",
            "--fifo-dir",
            str(containerd.fifo_dir),
            "--exec-id",
            "write",
            container_id,
            "sh",
            "-c",
            "head -c 100000 /dev/urandom > /written",
        )
        written = await client.snapshot_usage("default", record.snapshotter, record.snapshot_key)
        with pytest.raises(NotFound, match="no-such-key"):
            await client.snapshot_usage("default", record.snapshotter, "no-such-key")
    assert isinstance(fresh.size, int)
    assert isinstance(fresh.inodes, int)
    assert fresh.size >= 0
    assert fresh.inodes >= 0
    assert written.size >= fresh.size + 100_000
    assert written.inodes > fresh.inodes


async def test_content_lists_the_image_blobs_as_ctr_does(containerd, busybox_image):
    image_blobs = {
        busybox_image.manifest_digest,
        busybox_image.config_digest,
        busybox_image.layer_digest,
    }
    async with open_containerd(str(containerd.address)) as client:
        await collect_garbage(client, containerd, busybox_image.name, "default")
        content = {c.digest: c for c in await client.content("default")}
        layer = await client.content_info("default", busybox_image.layer_digest)
        missing = "sha256:" + "0" * 64
        with pytest.raises(NotFound, match=missing):
            await client.content_info("default", missing)
        elsewhere = await client.content("no-such-namespace")
    listed_by_ctr = ctr_content(containerd)
    assert {d: dict(c.labels) for d, c in content.items()} == listed_by_ctr
    assert image_blobs <= set(content)
    blobs = containerd.dir / CONTENT_BLOBS
    for digest in image_blobs:
        assert content[digest].size == (blobs / digest.removeprefix("sha256:")).stat().st_size
    assert sum(content[d].size for d in image_blobs) == busybox_image.size
    manifest = content[busybox_image.manifest_digest]
    assert manifest.labels["containerd.io/gc.ref.content.config"] == busybox_image.config_digest
    assert manifest.created_at > 1_600_000_000 * 10**9
    # List leaves out updated_at; Info has it.
    listed_layer = content[busybox_image.layer_digest]
    assert listed_layer.updated_at == 0
    assert (layer.digest, layer.size, layer.labels) == (
        listed_layer.digest,
        listed_layer.size,
        listed_layer.labels,
    )
    assert layer.created_at == listed_layer.created_at
    assert layer.updated_at >= layer.created_at
    assert elsewhere == []


async def test_deleting_the_last_image_with_sync_collects_its_content(containerd, busybox_image):
    namespace = f"evactors-prune-{uuid4().hex[:8]}"
    copy = "example.com/evactors/busybox:copy"
    image_blobs = {
        busybox_image.manifest_digest,
        busybox_image.config_digest,
        busybox_image.layer_digest,
    }
    containerd.import_image(busybox_image.path, namespace=namespace)
    containerd.ctr("images", "tag", busybox_image.name, copy, namespace=namespace)
    try:
        async with open_containerd(str(containerd.address)) as client:
            imported = {c.digest for c in await client.content(namespace)}
            # Another name still refers to the blobs: they stay. (This collection also
            # removes what the import left: its index blob, if still there.)
            await client.delete_image(namespace, copy)
            kept = {c.digest for c in await client.content(namespace)}
            await client.delete_image(namespace, busybox_image.name, sync=True)
            # sync: containerd collected the garbage before it answered.
            images_left = await client.images(namespace)
            content_left = await client.content(namespace)
            with pytest.raises(NotFound):
                await client.delete_image(namespace, busybox_image.name)
            # The same blobs in namespace "default" are untouched.
            in_default = await client.content_info("default", busybox_image.layer_digest)
        assert image_blobs <= imported
        assert kept == image_blobs
        assert images_left == []
        assert content_left == []
        assert containerd.ctr("content", "ls", "-q", namespace=namespace).stdout.split() == []
        assert ctr_snapshot_keys(containerd, namespace) == set()
        assert in_default.size > 0
        # Only an empty namespace can be removed.
        containerd.ctr("namespaces", "remove", namespace)
    finally:
        if namespace in containerd.namespaces():
            for name in (copy, busybox_image.name):
                containerd.ctr("images", "rm", "--sync", name, namespace=namespace, check=False)
            containerd.ctr("namespaces", "remove", namespace, check=False)
