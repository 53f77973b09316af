"""End to end: the containerd adapter's calls against a real, private containerd, each
checked against what `ctr` reports; typed errors; what the transport does when calls are
cancelled, time out, or lose their connection."""

from __future__ import annotations

import os
import re
import signal

import pytest
import trio

from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors.containerd import NotFound, Unavailable, open_containerd
from evactors.grpc import GrpcError, StatusCode
from evactors.testing import private_containerd

from ._ctd_helpers import wait_until_live


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
