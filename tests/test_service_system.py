"""GetSystemInfo and SystemPrune end to end: a real containerd, the evactors daemon, and
a gRPC client over its unix socket; every answer checked against what `ctr` reports.

Each test works in a namespace of its own (the session's containerd is shared with
tests that use "default"), imports the busybox image there and removes the namespace
afterwards. `ctr` runs in a worker thread, so the daemon keeps serving meanwhile.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import attrs
import pytest
import trio

from evactors import __version__
from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.containerd import NotFound, open_containerd
from evactors.events.pipeline import EventPipeline
from evactors.grpc import GrpcError, StatusCode
from evactors.rpc import SystemService, open_system_client
from evactors.system.prune import PruneFilter, prune
from evactors.testing import ImageInfo, PrivateContainerd, build_busybox_image

from ._evactors_helpers import eventually, receive, running_evactors, wait_until_live

CONTENT_BLOBS = "root/io.containerd.content.v1.content/blobs/sha256"


# -- a namespace of the test's own, seen through ctr ------------------------------------


@attrs.frozen
class Space:
    """One test's namespace in the session's containerd, with the busybox image in it.

    The `ctr` helpers run in a worker thread (they block for tens of milliseconds)."""

    containerd: PrivateContainerd
    name: str
    image: str

    async def ctr(self, *args: str) -> str:
        run = functools.partial(self.containerd.ctr, *args, namespace=self.name)
        return (await trio.to_thread.run_sync(run)).stdout

    async def created(self, labels: dict[str, str] | None = None) -> str:
        """A container that was created and never started (it has no task)."""
        return await self._sleeper(self.containerd.create, labels)

    async def running(self, labels: dict[str, str] | None = None) -> str:
        return await self._sleeper(self.containerd.start_detached, labels)

    async def _sleeper(self, make, labels: dict[str, str] | None) -> str:
        cid = new_id()
        await trio.to_thread.run_sync(
            functools.partial(
                make, self.image, cid, "sleep", "1000", labels=labels, namespace=self.name
            )
        )
        return cid

    async def paused(self) -> str:
        cid = await self.running()
        await self.ctr("tasks", "pause", cid)
        return cid

    async def stopped(self, labels: dict[str, str] | None = None) -> str:
        """A container whose task ran and was killed: its task is STOPPED."""
        cid = await self.running(labels)
        await self.kill(cid)
        return cid

    async def kill(self, cid: str) -> None:
        """SIGKILL a container's task and wait until ctr shows it STOPPED."""
        await self.ctr("tasks", "kill", "-s", "SIGKILL", cid)
        with trio.fail_after(5):
            while (await self.tasks()).get(cid) != "STOPPED":  # ruff: ignore[async-busy-wait] - asks ctr
                await trio.sleep(0.01)

    async def containers(self) -> set[str]:
        return set((await self.ctr("containers", "ls", "-q")).split())

    async def tasks(self) -> dict[str, str]:
        """{container id: status} as `ctr tasks ls` shows them."""
        rows = (await self.ctr("tasks", "ls")).splitlines()[1:]
        return {fields[0]: fields[2] for fields in (row.split() for row in rows)}

    async def images(self) -> set[str]:
        return set((await self.ctr("images", "ls", "-q")).split())

    async def snapshots(self) -> set[str]:
        rows = (await self.ctr("snapshots", "ls")).splitlines()[1:]
        return {row.split()[0] for row in rows}

    async def content_size(self) -> int:
        """Bytes of the blobs `ctr content ls` lists in this namespace (`ctr` rounds the
        sizes it prints: they are read from the content store's files instead)."""
        blobs = self.containerd.dir / CONTENT_BLOBS
        digests = (await self.ctr("content", "ls", "-q")).split()
        return sum((blobs / d.removeprefix("sha256:")).stat().st_size for d in digests)

    async def collect_garbage(self) -> None:
        """Have containerd collect its garbage now (deleting a tag with --sync): an
        import may leave a blob held only by its finished lease for a while."""
        tag = f"example.com/evactors/gc:{uuid4().hex[:8]}"
        await self.ctr("images", "tag", self.image, tag)
        await self.ctr("images", "rm", "--sync", tag)

    async def state(self) -> tuple[set[str], dict[str, str], set[str], set[str]]:
        """Everything a prune could remove: containers, tasks, images, snapshots."""
        return (
            await self.containers(),
            await self.tasks(),
            await self.images(),
            await self.snapshots(),
        )


def new_id() -> str:
    # Container ids share the host's cgroup namespace with every containerd: unique.
    return f"s-{uuid4().hex[:10]}"


@pytest.fixture
def space(containerd, busybox_image) -> Iterator[Space]:
    name = f"p-{uuid4().hex[:8]}"
    containerd.import_image(busybox_image.path, namespace=name)
    try:
        yield Space(containerd, name, busybox_image.name)
    finally:
        containerd.remove_namespace(name)


@attrs.frozen
class Four:
    """One container in each state, at once."""

    running: str
    paused: str
    created: str
    stopped: str


async def four_containers(space: Space) -> Four:
    return Four(
        running=await space.running(),
        paused=await space.paused(),
        created=await space.created(),
        stopped=await space.stopped(),
    )


def prune_request(space: Space, *filters: str, **fields: bool) -> pb.SystemPruneRequest:
    return pb.SystemPruneRequest(namespace=space.name, filters=list(filters), **fields)


# -- GetSystemInfo ------------------------------------------------------------------------


def ctr_version(containerd: PrivateContainerd) -> dict[str, str]:
    """The server half of `ctr version`: {"Version": ..., "Revision": ..., "UUID": ...}."""
    server = containerd.ctr("version").stdout.split("Server:", 1)[1]
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in server.splitlines())
        if value
    }


def ctr_plugins(containerd: PrivateContainerd) -> list[tuple[str, str, str]]:
    """(type, id, status) from `ctr plugins ls` (columns separated by runs of spaces)."""
    rows = containerd.ctr("plugins", "ls").stdout.splitlines()[1:]
    return [
        (fields[0], fields[1], fields[-1])
        for fields in (re.split(r"\s+", row.strip()) for row in rows)
    ]


def operating_system() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME") or "Linux"
    except OSError:
        return "Linux"


def mem_total() -> int:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


async def test_info_reports_what_ctr_reports(client, containerd, space):
    four = await four_containers(space)
    await space.ctr("images", "tag", space.image, "example.com/evactors/second:v1")
    assert await space.tasks() == {
        four.running: "RUNNING",
        four.paused: "PAUSED",
        four.stopped: "STOPPED",
    }

    info = await client.info(pb.GetSystemInfoRequest(namespace=space.name))
    again = await client.info(pb.GetSystemInfoRequest(namespace=space.name))

    version = await trio.to_thread.run_sync(ctr_version, containerd)
    assert info.server_version == version["Version"] == containerd.version()
    assert info.server_revision == version["Revision"]
    assert info.server_uuid == version["UUID"]
    assert info.server_uuid
    assert again.server_uuid == info.server_uuid
    plugins = [(p.type, p.id, p.status) for p in info.plugins]
    assert sorted(plugins) == sorted(await trio.to_thread.run_sync(ctr_plugins, containerd))
    assert {p.status for p in info.plugins} <= {"ok", "skip", "error"}
    assert sorted(info.namespaces) == sorted(await trio.to_thread.run_sync(containerd.namespaces))
    assert space.name in info.namespaces

    assert info.namespace == space.name
    assert (
        info.containers,
        info.containers_running,
        info.containers_paused,
        info.containers_stopped,
    ) == (4, 1, 1, 2)
    assert info.containers == len(await space.containers())
    assert info.images == len(await space.images()) == 2

    uname = os.uname()
    assert info.kernel_version == uname.release
    assert info.operating_system == operating_system()
    assert info.os_type == "linux"
    assert info.architecture == uname.machine
    assert info.ncpu == len(os.sched_getaffinity(0))
    assert info.mem_total == mem_total()
    assert info.name == socket.gethostname() == uname.nodename

    assert info.service_version == __version__
    assert info.HasField("stats")
    assert info.stats.containerd_connected
    assert 0 < info.stats.started_at <= time.time_ns()
    assert info.stats.events_received >= 1  # wait_until_live's probe at least


async def test_info_on_the_default_namespace_when_none_is_named(client, containerd, busybox_image):
    info = await client.info(pb.GetSystemInfoRequest())
    assert info.namespace == "default"
    assert info.containers == len(await trio.to_thread.run_sync(containerd.containers))
    images = await trio.to_thread.run_sync(functools.partial(containerd.ctr, "images", "ls", "-q"))
    assert info.images == len(images.stdout.split()) >= 1


async def test_an_unknown_namespace_has_zero_counts_and_is_not_created(client, containerd):
    unknown = f"p-{uuid4().hex[:8]}-none"
    info = await client.info(pb.GetSystemInfoRequest(namespace=unknown))
    assert info.namespace == unknown
    assert (
        info.containers,
        info.containers_running,
        info.containers_paused,
        info.containers_stopped,
        info.images,
    ) == (0, 0, 0, 0, 0)
    assert unknown not in info.namespaces
    assert info.server_version
    # Nothing to prune there either, and neither call makes the namespace.
    request = pb.SystemPruneRequest(namespace=unknown, all=True, volumes=True)
    assert await client.prune(request) == pb.SystemPruneResponse()
    assert unknown not in await trio.to_thread.run_sync(containerd.namespaces)


# -- SystemPrune: what goes and what stays --------------------------------------------------


async def test_a_dry_run_lists_what_a_prune_removes_and_removes_nothing(client, space):
    four = await four_containers(space)
    dangling = f"example.com/evactors/dangling@{await image_digest(space)}"
    await space.ctr("images", "tag", space.image, dangling)
    await space.ctr("images", "tag", space.image, f"example.com/evactors/unused:v{uuid4().hex[:4]}")
    before = await space.state()

    dry = await client.prune(prune_request(space, dry_run=True))

    assert sorted(dry.containers_deleted) == sorted([four.created, four.stopped])
    # Not `all`: a tagged image stays even when unused; the digest-only one goes.
    assert list(dry.images_deleted) == [dangling]
    assert list(dry.errors) == []
    assert await space.state() == before

    # A real run now removes exactly that.
    real = await client.prune(prune_request(space))
    assert sorted(real.containers_deleted) == sorted(dry.containers_deleted)
    assert sorted(real.images_deleted) == sorted(dry.images_deleted)


async def test_prune_removes_stopped_containers_and_their_snapshots_only(client, space):
    four = await four_containers(space)
    # ctr names a container's snapshot after the container.
    assert {four.running, four.paused, four.created, four.stopped} <= await space.snapshots()
    images = await space.images()

    async with open_containerd(str(space.containerd.address)) as ctd_client:
        response = await client.prune(prune_request(space))
        # At once: containerd's garbage collection would remove them a little later.
        for gone in (four.created, four.stopped):
            with pytest.raises(NotFound):
                await ctd_client.snapshot_usage(space.name, "overlayfs", gone)

    assert sorted(response.containers_deleted) == sorted([four.created, four.stopped])
    assert list(response.images_deleted) == []
    assert list(response.errors) == []
    assert response.space_reclaimed == 0
    assert await space.containers() == {four.running, four.paused}
    assert await space.tasks() == {four.running: "RUNNING", four.paused: "PAUSED"}
    snapshots = await space.snapshots()
    assert {four.running, four.paused} <= snapshots
    assert not {four.created, four.stopped} & snapshots
    assert await space.images() == images

    # Nothing left to remove.
    assert await client.prune(prune_request(space)) == pb.SystemPruneResponse()


async def test_an_image_in_use_stays_and_all_removes_it_once_its_container_is_gone(
    client, space, busybox_image
):
    user = await space.running()
    extra = "example.com/evactors/extra:v1"
    await space.ctr("images", "tag", space.image, extra)
    await space.collect_garbage()

    first = await client.prune(prune_request(space, all=True))
    assert list(first.containers_deleted) == []
    assert list(first.images_deleted) == [extra]
    # The extra name's blobs are the busybox image's, which stays.
    assert first.space_reclaimed == 0
    assert await space.images() == {space.image}
    assert await space.containers() == {user}

    await space.kill(user)
    size = await space.content_size()
    second = await client.prune(prune_request(space, all=True))
    assert list(second.containers_deleted) == [user]
    assert list(second.images_deleted) == [space.image]
    assert list(second.errors) == []
    assert await space.images() == set()
    assert await space.containers() == set()
    # Gone from this namespace, but namespace "default" still holds the busybox
    # image: its blobs stay on disk, so no space was reclaimed.
    assert await space.content_size() == 0
    assert size == busybox_image.size
    assert second.space_reclaimed == 0


async def import_dangling_image(space, tmp_path) -> ImageInfo:
    """A dangling image with blobs of its own (a layer of random bytes), imported under a
    digest-only name, the content store then collected."""
    payload = tmp_path / "payload"
    payload.write_bytes(secrets.token_bytes(20_000))
    digest_only = f"example.com/evactors/own@sha256:{secrets.token_hex(32)}"
    own = build_busybox_image(tmp_path / "own.tar", name=digest_only, busybox=payload)
    await space.ctr("images", "import", str(own.path))
    await space.collect_garbage()
    return own


async def test_space_reclaimed_is_the_drop_in_the_content_store(client, space, tmp_path):
    own = await import_dangling_image(space, tmp_path)
    digest_only = own.name
    assert await space.images() == {space.image, digest_only}
    before = await space.content_size()

    response = await client.prune(prune_request(space))

    after = await space.content_size()
    assert list(response.images_deleted) == [digest_only]
    assert await space.images() == {space.image}
    assert response.space_reclaimed == before - after == own.size
    assert list(response.errors) == []


async def image_digest(space: Space) -> str:
    """The busybox image's manifest digest, as `ctr images ls` shows it."""
    for row in (await space.ctr("images", "ls")).splitlines()[1:]:
        fields = row.split()
        if fields[0] == space.image:
            return fields[2]
    raise AssertionError(f"{space.image} is not in namespace {space.name}")


# -- SystemPrune: filters -------------------------------------------------------------------


def rfc3339(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


async def test_until_chooses_the_containers_created_before_it(client, space):
    older = await space.created()
    between = time.time_ns()
    newer = await space.created()
    seconds, fraction = divmod(between, 1_000_000_000)

    async def chosen(*filters: str) -> set[str]:
        response = await client.prune(prune_request(space, *filters, dry_run=True))
        return set(response.containers_deleted)

    assert await chosen(f"until={rfc3339(between)}") == {older}
    assert await chosen(f"until={seconds}.{fraction:09d}") == {older}
    assert await chosen("until=1h") == set()  # an hour ago: both are younger
    assert await chosen("until=0s") == {older, newer}  # now

    response = await client.prune(prune_request(space, f"until={rfc3339(between)}"))
    assert list(response.containers_deleted) == [older]
    assert await space.containers() == {newer}


async def test_label_filters_choose_the_containers_docker_would(client, space):
    front = await space.created({"tier": "front", "keep": "yes"})
    back = await space.stopped({"tier": "back"})
    plain = await space.created()
    running = await space.running({"tier": "front"})

    async def chosen(*filters: str) -> set[str]:
        response = await client.prune(prune_request(space, *filters, dry_run=True))
        return set(response.containers_deleted)

    assert await chosen() == {front, back, plain}
    assert await chosen("label=tier") == {front, back}
    assert await chosen("label=tier=front") == {front}
    assert await chosen("label=tier", "label=keep=yes") == {front}
    assert await chosen("label=tier=front", "label=tier=back") == set()
    assert await chosen("label!=keep") == {back, plain}
    assert await chosen("label!=tier=back") == {front, plain}
    # Spared only when every label! condition holds.
    assert await chosen("label!=tier", "label!=keep") == {back, plain}
    assert await chosen("label=tier", "label!=keep") == {back}
    assert await chosen("label=nobody-has-this") == set()

    response = await client.prune(prune_request(space, "label!=keep"))
    assert sorted(response.containers_deleted) == sorted([back, plain])
    assert await space.containers() == {front, running}


BAD_FILTERS = [
    (["colour=red"], "colour=red"),
    (["until=yesterday-ish"], "until=yesterday-ish"),
    (["label"], "label"),
    (["label=tier", "until=1h", "until=2h"], "until=2h"),
]


async def test_a_bad_filter_is_rejected_and_nothing_is_removed(client, space):
    await space.created()
    await space.stopped()
    await space.ctr("images", "tag", space.image, f"example.com/x@{await image_digest(space)}")
    before = await space.state()

    for filters, named in BAD_FILTERS:
        with pytest.raises(GrpcError) as caught:
            await client.prune(prune_request(space, *filters, all=True))
        assert caught.value.code == StatusCode.INVALID_ARGUMENT, filters
        assert f'"{named}"' in caught.value.message
        assert await space.state() == before, filters


# -- SystemPrune: one at a time --------------------------------------------------------------


@attrs.define
class GatedProxy:
    """A unix socket in front of containerd that, while `hold` is set, stops each new
    connection before it reaches containerd until `release` is set: the daemon is then
    known to be inside the call that made it."""

    target: str
    hold: bool = False
    entered: trio.Event = attrs.Factory(trio.Event)
    release: trio.Event = attrs.Factory(trio.Event)

    async def serve(self, path: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen()
        await trio.serve_listeners(
            self._relay, [trio.SocketListener(sock)], task_status=task_status
        )

    async def _relay(self, downstream: trio.SocketStream) -> None:
        async with downstream:
            if self.hold:
                self.entered.set()
                await self.release.wait()
            upstream = await trio.open_unix_socket(self.target)
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(_pump, downstream, upstream, nursery.cancel_scope)
                nursery.start_soon(_pump, upstream, downstream, nursery.cancel_scope)


async def _pump(
    source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
) -> None:
    try:
        async for data in source:
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        scope.cancel()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path, for unix sockets."""
    path = Path(tempfile.mkdtemp(prefix="evs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def expect_refused(client, request: pb.SystemPruneRequest) -> None:
    with pytest.raises(GrpcError) as caught:
        await client.prune(request)
    assert caught.value.code == StatusCode.ABORTED
    assert "a prune is already running" in caught.value.message


async def test_a_second_prune_while_one_runs_is_refused_with_aborted(
    containerd, space, socket_path, short_dir
):
    stopped = await space.created()
    proxy = GatedProxy(str(containerd.address))
    proxied = str(short_dir / "ctd.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve, proxied)
        async with (
            open_containerd(str(containerd.address)) as ctd_client,
            running_evactors(proxied, socket_path) as daemon,
            open_system_client(daemon.addresses[0]) as client,
        ):
            await wait_until_live(daemon, ctd_client)
            results: list[pb.SystemPruneResponse] = []

            async def first() -> None:
                results.append(await client.prune(prune_request(space)))

            with trio.fail_after(10):
                async with trio.open_nursery() as calls:
                    proxy.hold = True
                    calls.start_soon(first)
                    # The first prune is connecting to containerd: it is inside its call.
                    await proxy.entered.wait()
                    await expect_refused(client, prune_request(space))
                    await expect_refused(client, prune_request(space, dry_run=True))
                    assert await space.containers() == {stopped}
                    proxy.hold = False
                    proxy.release.set()
            assert list(results[0].containers_deleted) == [stopped]
            # Once it is done, the next one runs.
            assert await client.prune(prune_request(space)) == pb.SystemPruneResponse()
        nursery.cancel_scope.cancel()


# -- containerd unreachable ------------------------------------------------------------------


def refusing_socket(path: Path) -> None:
    """A socket file nobody listens on (what a crashed containerd leaves)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


@pytest.mark.parametrize("kind", ["missing", "refusing"])
async def test_containerd_unreachable_gives_unavailable_naming_its_socket(
    socket_path, short_dir, kind
):
    nowhere = short_dir / "containerd.sock"
    if kind == "refusing":
        refusing_socket(nowhere)
    with trio.fail_after(15):  # a hang guard, not a timing assertion
        async with (
            running_evactors(str(nowhere), socket_path) as daemon,
            open_system_client(daemon.addresses[0]) as client,
        ):
            for call in (
                lambda: client.info(pb.GetSystemInfoRequest()),
                lambda: client.prune(pb.SystemPruneRequest()),
                lambda: client.prune(pb.SystemPruneRequest(dry_run=True, all=True)),
            ):
                with pytest.raises(GrpcError) as caught:
                    await call()
                assert caught.value.code == StatusCode.UNAVAILABLE
                assert str(nowhere) in caught.value.message
            # A failed prune does not leave the service thinking one still runs.
            with pytest.raises(GrpcError) as caught:
                await client.prune(pb.SystemPruneRequest())
            assert caught.value.code == StatusCode.UNAVAILABLE


async def test_a_containerd_that_never_answers_is_unavailable_naming_its_socket(short_dir):
    # A socket whose listener never accepts: connecting succeeds (the kernel's backlog),
    # then no answer comes. Each containerd call has a deadline (here 0.3 s).
    hung = short_dir / "hung.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(hung))
        listener.listen(8)
        connect = functools.partial(open_containerd, str(hung), call_timeout=0.3)
        service = SystemService(EventPipeline(), connect)
        for call in (
            lambda: service.GetSystemInfo(pb.GetSystemInfoRequest()),
            lambda: service.SystemPrune(pb.SystemPruneRequest()),
        ):
            with trio.fail_after(10), pytest.raises(GrpcError) as caught:
                await call()
            assert caught.value.code == StatusCode.UNAVAILABLE
            assert f"containerd at unix://{hung}" in caught.value.message


# -- events ---------------------------------------------------------------------------------


async def test_what_a_prune_deletes_reaches_event_subscribers(evactors, client, space):
    stopped = await space.stopped()
    dangling = f"example.com/evactors/dangling@{await image_digest(space)}"
    await space.ctr("images", "tag", space.image, dangling)

    request = pb.GetSystemEventsRequest(filters=[f"namespace={space.name}"])
    async with client.events(request) as stream:
        await eventually(lambda: evactors.pipeline.stats().subscribers == 1)
        response = await client.prune(prune_request(space))
        assert list(response.containers_deleted) == [stopped]
        assert list(response.images_deleted) == [dangling]

        wanted = {
            ("/tasks/delete", "destroy", stopped),
            ("/containers/delete", "destroy", stopped),
            ("/images/delete", "delete", ""),
        }
        seen: list[pb.SystemEvent] = []
        with trio.fail_after(5):
            while not wanted <= {(e.topic, e.status, e.container_id) for e in seen}:
                seen.extend(await receive(stream, 1))
    assert all(e.namespace == space.name for e in seen)
    image_event = next(e for e in seen if e.topic == "/images/delete")
    assert image_event.type == pb.IMAGE_EVENT
    assert dangling in image_event.event_data
    topics = [e.topic for e in seen]
    assert topics.index("/tasks/delete") < topics.index("/containers/delete")


# -- races inside a prune (prune() itself, on a real containerd) ------------------------------


class RacingClient:
    """A real containerd client whose `method` first runs `meanwhile(container_id)`:
    something another client does between prune's steps, at a known moment."""

    def __init__(self, real, method: str, meanwhile) -> None:
        self._real = real
        self._method = method
        self._meanwhile = meanwhile

    def __getattr__(self, name: str):
        attribute = getattr(self._real, name)
        if name != self._method:
            return attribute

        async def racing(namespace: str, container_id: str, *args, **kwargs):
            await self._meanwhile(container_id)
            return await attribute(namespace, container_id, *args, **kwargs)

        return racing


@pytest.mark.parametrize("moment", ["task", "delete_container"])
async def test_a_container_that_starts_during_a_prune_is_left_alone(containerd, space, moment):
    cid = await space.created()

    async def start(container_id: str) -> None:
        await trio.to_thread.run_sync(
            functools.partial(containerd.start_task, container_id, namespace=space.name)
        )

    async with open_containerd(str(containerd.address)) as real:
        report = await prune(RacingClient(real, moment, start), space.name, PruneFilter())
    assert report.containers_deleted == []
    assert report.errors == []
    assert await space.tasks() == {cid: "RUNNING"}
    assert cid in await space.snapshots()


async def test_a_stopped_container_whose_task_someone_else_deletes_is_still_removed(
    containerd, space
):
    cid = await space.stopped()

    async def delete_task(container_id: str) -> None:
        await space.ctr("tasks", "delete", container_id)

    async with open_containerd(str(containerd.address)) as real:
        report = await prune(
            RacingClient(real, "delete_task", delete_task), space.name, PruneFilter()
        )
    assert report.containers_deleted == [cid]
    assert report.errors == []
    assert await space.containers() == set()


# -- nerdctl's volumes count in space_reclaimed too ------------------------------------------


async def test_space_reclaimed_adds_removed_volumes_to_the_drop_in_the_content_store(
    containerd, space, tmp_path
):
    from evactors.system.nerdctl import NerdctlPaths, data_store

    own = await import_dangling_image(space, tmp_path)
    digest_only = own.name
    paths = NerdctlPaths(str(tmp_path / "nerdctl"), str(tmp_path / "net.d"))
    volume = Path(data_store(paths, f"unix://{containerd.address}") or "") / "volumes"
    volume = volume / space.name / "anon"
    (volume / "_data").mkdir(parents=True)
    (volume / "_data" / "content").write_bytes(b"v" * 3000)
    (volume / "volume.json").write_text('{"labels": {"nerdctl/anonymous-volumes": ""}}')

    async with open_containerd(str(containerd.address)) as real:
        report = await prune(real, space.name, PruneFilter(), volumes=True, nerdctl_paths=paths)

    assert report.images_deleted == [digest_only]
    assert report.volumes_deleted == ["anon"]
    assert report.space_reclaimed == own.size + 3000
    assert report.errors == []
    assert not volume.exists()
