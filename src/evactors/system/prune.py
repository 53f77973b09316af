"""`SystemPrune`: remove one namespace's stopped containers and unused images.

What goes, as `nerdctl system prune` decides it for containerd:

- **Containers** that are stopped: no task, or a task that has stopped (the task is
  deleted first). A running, paused or created-but-not-started task is never touched;
  each container's task is looked up again just before it is removed, and containerd
  refuses to delete a container that has a task, so one that starts in between is left
  alone (not an error). Its snapshot goes with it.
- **Images**: dangling ones (`references.is_dangling`), and with `all` every image no
  remaining container uses. An image a remaining container uses is never removed.
  Deleted with containerd's `sync` option, which waits for garbage collection, so the
  content store's drop can be measured: `space_reclaimed` is the size of the blobs that
  are gone from it (a blob another namespace still uses stays, and does not count).
- **Filters** (`docker system prune --filter`): `until=TIME` (created before), `label=k`,
  `label=k=v` (all must match), `label!=k`, `label!=k=v` (excluded when all match).
  They apply to containers, images, networks and volumes alike.
- **Networks and volumes** are nerdctl's files, not containerd objects: nerdctl's
  unused networks, and with `volumes` its unused anonymous volumes of the namespace,
  where nerdctl's state exists on the host (`evactors.system.nerdctl` says exactly
  what goes; its paths are `nerdctl_paths`). The filters apply to them too. The bytes
  of removed volumes count in `space_reclaimed`.

One failure never stops the rest: each becomes one line of `errors`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from evactors.containerd import (
    Container,
    ContainerdClient,
    ContainerdError,
    FailedPrecondition,
    Image,
    NotFound,
    TaskStatus,
)
from evactors.references import is_dangling
from evactors.timespec import TimeSpecError, parse_time

from .nerdctl import DEFAULT_NERDCTL_PATHS, NerdctlPaths, prune_nerdctl_state

LOGGER = logging.getLogger(__name__)

PRUNE_FILTER_KEYS: Final = ("until", "label", "label!")


class PruneFilterError(ValueError):
    """A prune filter that cannot be used; the message names it and says why."""

    def __init__(self, filter_text: str, reason: str) -> None:
        super().__init__(f'invalid prune filter "{filter_text}": {reason}')
        self.filter = filter_text


@attrs.frozen
class PruneFilter:
    """Which objects a prune may consider (all of them when empty).

    Attributes:
      created_before: Only objects created at or before this (Unix ns); None = any.
      labels: `label=` conditions: (key, value or None for "has the key"); all must hold.
      not_labels: `label!=` conditions: an object is spared when all of them hold.
    """

    created_before: int | None = None
    labels: tuple[tuple[str, str | None], ...] = ()
    not_labels: tuple[tuple[str, str | None], ...] = ()

    def matches(self, created_at: int, labels: Mapping[str, str]) -> bool:
        # Docker prunes what was created at or before `until` (it skips only "after").
        if self.created_before is not None and created_at > self.created_before:
            return False
        if not all(_has_label(labels, condition) for condition in self.labels):
            return False
        return not (self.not_labels and all(_has_label(labels, c) for c in self.not_labels))


def _has_label(labels: Mapping[str, str], condition: tuple[str, str | None]) -> bool:
    key, value = condition
    return key in labels and (value is None or labels[key] == value)


def parse_prune_filters(filters: Sequence[str], *, now_ns: int) -> PruneFilter:
    """Check prune filters as `docker system prune --filter` takes them.

    Raises:
      PruneFilterError: naming the first filter that is malformed, has an unknown key,
        an unreadable time, or is a second `until`.
    """
    created_before: int | None = None
    labels: list[tuple[str, str | None]] = []
    not_labels: list[tuple[str, str | None]] = []
    for text in filters:
        key, equals, value = text.partition("=")
        if not equals:
            raise PruneFilterError(text, "want key=value")
        if key not in PRUNE_FILTER_KEYS:
            raise PruneFilterError(text, f"unknown key {key!r}; prune takes until, label, label!")
        if not value:
            raise PruneFilterError(text, "the value is empty")
        if key == "until":
            if created_before is not None:
                raise PruneFilterError(text, "only one until filter is allowed")
            try:
                created_before = parse_time(value, now_ns=now_ns)
            except TimeSpecError as error:
                raise PruneFilterError(text, str(error)) from None
            continue
        label_key, has_value, label_value = value.partition("=")
        condition = (label_key, label_value if has_value else None)
        (labels if key == "label" else not_labels).append(condition)
    return PruneFilter(created_before, tuple(labels), tuple(not_labels))


@attrs.define
class PruneReport:
    """What a prune removed (or, in a dry run, would remove now)."""

    containers_deleted: list[str] = attrs.Factory(list)
    images_deleted: list[str] = attrs.Factory(list)
    networks_deleted: list[str] = attrs.Factory(list)
    volumes_deleted: list[str] = attrs.Factory(list)
    space_reclaimed: int = 0
    errors: list[str] = attrs.Factory(list)


async def prune(
    client: ContainerdClient,
    namespace: str,
    prune_filter: PruneFilter,
    *,
    all_images: bool = False,
    volumes: bool = False,
    dry_run: bool = False,
    nerdctl_paths: NerdctlPaths = DEFAULT_NERDCTL_PATHS,
) -> PruneReport:
    """Remove what is stopped and unused in `namespace`, or list it (`dry_run`).

    `volumes` adds nerdctl's anonymous volumes; `nerdctl_paths` says where nerdctl keeps
    its networks and volumes (nerdctl's defaults); the containerd address nerdctl's data
    store is named after is `client.address`.

    Raises:
      ContainerdError: listing failed (nothing was removed). Failures to remove one
        item are reported in `errors` instead.
    """
    report = PruneReport()
    containers = await client.containers(namespace)
    stopped = await _stopped(client, namespace, containers)
    chosen = [c for c in stopped if prune_filter.matches(c.created_at, c.labels)]
    if dry_run:
        report.containers_deleted.extend(c.id for c in chosen)
        gone = chosen
        remaining = [c for c in containers if c not in chosen]
    else:
        gone = []
        for container in chosen:
            if await _remove_container(client, namespace, container, report.errors):
                report.containers_deleted.append(container.id)
                gone.append(container)
        remaining = await client.containers(namespace)

    # Networks and volumes before images, in nerdctl's order.
    await prune_nerdctl_state(
        client,
        namespace,
        prune_filter.matches,
        gone=gone,
        volumes=volumes,
        dry_run=dry_run,
        paths=nerdctl_paths,
        report=report,
    )

    in_use = {container.image for container in remaining}
    images = [
        image
        for image in await client.images(namespace)
        if image.name not in in_use
        and (all_images or is_dangling(image.name))
        and prune_filter.matches(image.created_at, image.labels)
    ]
    if dry_run:
        report.images_deleted.extend(image.name for image in images)
    elif images:
        before = await _stored_blobs(client)
        for image in images:
            if await _remove_image(client, namespace, image, report.errors):
                report.images_deleted.append(image.name)
        after = await _stored_blobs(client)
        report.space_reclaimed += sum(
            size for digest, size in before.items() if digest not in after
        )
    return report


async def _stopped(
    client: ContainerdClient, namespace: str, containers: Sequence[Container]
) -> list[Container]:
    tasks = {task.container_id: task for task in await client.tasks(namespace)}
    return [
        c
        for c in containers
        if (task := tasks.get(c.id)) is None or task.status is TaskStatus.STOPPED
    ]


async def _remove_container(
    client: ContainerdClient, namespace: str, container: Container, errors: list[str]
) -> bool:
    """Remove a stopped container, its task and its snapshot. False if it was left
    alone (it started meanwhile) or failed (then a line is added to `errors`)."""
    try:
        try:
            task = await client.task(namespace, container.id)
        except NotFound:
            task = None
        if task is not None:
            if task.status is not TaskStatus.STOPPED:
                LOGGER.info("prune: container %s started meanwhile; left alone", container.id)
                return False
            # NotFound: someone else deleted the task; the container is still stopped.
            with contextlib.suppress(NotFound):
                await client.delete_task(namespace, container.id)
        # The container goes before its snapshot: containerd refuses to delete a
        # container that has a task, so a container started meanwhile keeps both.
        await client.delete_container(namespace, container.id)
    except FailedPrecondition:
        LOGGER.info("prune: container %s started meanwhile; left alone", container.id)
        return False
    except NotFound:
        return False  # someone else removed it: nothing of ours to report
    except ContainerdError as error:
        errors.append(f"container {container.id}: {error}")
        return False
    if container.snapshotter and container.snapshot_key:
        try:
            await client.remove_snapshot(namespace, container.snapshotter, container.snapshot_key)
        except NotFound:
            pass  # garbage collection was first
        except ContainerdError as error:
            errors.append(f"snapshot {container.snapshot_key} of {container.id}: {error}")
    return True


async def _remove_image(
    client: ContainerdClient, namespace: str, image: Image, errors: list[str]
) -> bool:
    try:
        await client.delete_image(namespace, image.name, sync=True)
    except NotFound:
        return False
    except ContainerdError as error:
        errors.append(f"image {image.name}: {error}")
        return False
    return True


async def _stored_blobs(client: ContainerdClient) -> dict[str, int]:
    """Every blob of the content store, in any namespace: digest -> size. A blob that
    another namespace still references stays on disk, so it does not count as gone."""
    blobs: dict[str, int] = {}
    for namespace in await client.namespaces():
        blobs.update((info.digest, info.size) for info in await client.content(namespace.name))
    return blobs
