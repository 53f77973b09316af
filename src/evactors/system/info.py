"""What `GetSystemInfo` reports: containerd's facts, one namespace's counts, the host.

Everything comes from its real source on each call: containerd's Version,
Introspection, Namespaces, Containers, Tasks and Images services, and the host's
`/proc` and os-release (`host.read_host_facts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs
import trio

from evactors.containerd import ContainerdClient, Plugin, Task, TaskStatus, Version

from .host import HostFacts, read_host_facts

DEFAULT_NAMESPACE = "default"


@attrs.frozen
class ContainerCounts:
    """A namespace's containers by state, as `nerdctl info` counts them: running,
    paused (or pausing), and stopped — everything else (no task, a created task that was
    never started, a stopped task). The three add up to `total`."""

    total: int = 0
    running: int = 0
    paused: int = 0
    stopped: int = 0


@attrs.frozen
class SystemInfo:
    version: Version
    server_uuid: str
    plugins: list[Plugin]
    namespaces: list[str]
    namespace: str
    containers: ContainerCounts
    images: int
    host: HostFacts


def count_containers(container_ids: Iterable[str], tasks: Mapping[str, Task]) -> ContainerCounts:
    """Count containers by the state of their task (`tasks` by container id)."""
    total = running = paused = 0
    for container_id in container_ids:
        total += 1
        task = tasks.get(container_id)
        if task is None:
            continue
        if task.status is TaskStatus.RUNNING:
            running += 1
        elif task.status in {TaskStatus.PAUSED, TaskStatus.PAUSING}:
            paused += 1
    return ContainerCounts(total, running, paused, total - running - paused)


async def gather_system_info(client: ContainerdClient, namespace: str) -> SystemInfo:
    """Ask containerd and the host. An unknown namespace is not an error: its counts
    are zero (containerd lists nothing in it).

    Raises:
      ContainerdError: a call failed (`Unavailable` when containerd cannot be reached).
    """
    version = await client.version()
    server_uuid = await client.server_uuid()
    plugins = await client.plugins()
    namespaces = [n.name for n in await client.namespaces()]
    containers = await client.containers(namespace)
    tasks = {task.container_id: task for task in await client.tasks(namespace)}
    images = await client.images(namespace)
    return SystemInfo(
        version=version,
        server_uuid=server_uuid,
        plugins=plugins,
        namespaces=namespaces,
        namespace=namespace,
        containers=count_containers((c.id for c in containers), tasks),
        images=len(images),
        # File reads (/proc, os-release): off the event loop, like all blocking I/O.
        host=await trio.to_thread.run_sync(read_host_facts),
    )
