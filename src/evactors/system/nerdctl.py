"""nerdctl's own state on the host, pruned as `nerdctl system prune [--volumes]` does.

nerdctl keeps networks and volumes as files, not containerd objects, and records what a
container uses in the container's labels. What evactors reads (nerdctl 2.x layout):

- **Data store**: `<data_root>/<hash>`, `hash` being the first 8 hex digits of the
  SHA-256 of containerd's socket path (`unix://` removed, symlinks resolved): for
  `/run/containerd/containerd.sock`, `/var/lib/nerdctl/1935db59`.
- **Networks**: CNI configurations (`*.conf`, `*.conflist`, `*.json`) directly in the
  CNI netconf directory and in its `<namespace>/` subdirectory. One is nerdctl's when it
  has a string `nerdctlID`; `nerdctlLabels` holds its labels; `plugins[0]` of type
  `bridge` names its bridge interface in `bridge`.
- **Volumes**: `<data store>/volumes/<namespace>/<name>/` with `_data/` (the content)
  and `volume.json` (`{"labels": {...}}`). An anonymous volume has the label
  `nerdctl/anonymous-volumes` with an empty value.
- **Container labels**: `nerdctl/networks` (JSON list of network names),
  `nerdctl/mounts` (JSON list of Docker-style mount points: `Type` `volume` with the
  volume's `Name`; newer nerdctl may split it into one label per mount under
  `nerdctl/mounts...` keys), `nerdctl/anonymous-volumes` (JSON list of names).
- **Locks**: nerdctl `flock`s the netconf directory while it writes or removes a network,
  and the namespace's volume directory while it creates, lists or removes volumes.

What goes:

- **Networks** nerdctl made that no container uses, in any namespace, whatever its state
  (nerdctl counts only running and paused ones; evactors is stricter so a stopped
  container kept by a filter, or one in another namespace, can still start). Never
  `bridge`, `host`, `none`, nor a network labelled `nerdctl/default-network`. The file is
  removed, then its bridge interface, if there is one and it is a bridge (as nerdctl).
  Only where nerdctl has a data store for this containerd: the netconf directory is
  shared by every containerd on the host, and this prune sees one containerd's
  containers only.
- **Volumes** (only with `volumes`): anonymous volumes of the namespace that no
  remaining container of the namespace mounts. Anonymous: labelled so by nerdctl, or
  listed in `nerdctl/anonymous-volumes` of a container this prune removed (nerdctl's
  `run -v /path` and image `VOLUME`s leave no label, and nerdctl's own container prune
  removes those with their container). The bytes of a removed volume's content (the
  files in `_data`, as nerdctl sizes volumes) count in `space_reclaimed`: measured
  before removal, each inode once, only inodes whose every hard link was inside.
  Without `volumes` no volume is touched (nerdctl's container prune would still remove
  the anonymous volumes of the containers it removes).
- The prune's **filters** apply to both: a network's labels are its `nerdctlLabels`, a
  volume's those of its `volume.json`; the creation time is the modification time of
  the configuration file or of `volume.json` (nerdctl records none).

A label the prune cannot read (so it cannot tell what is in use) stops that half of the
prune with one line in `errors`; so does nerdctl's lock held for longer than
`LOCK_TIMEOUT` seconds. Where nerdctl's state does not exist there is nothing to do and
nothing is reported.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import struct
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Mapping
from typing import Final, Protocol

import attrs
import trio

from evactors.containerd import Container, ContainerdClient, ContainerdError

LOGGER = logging.getLogger(__name__)

DEFAULT_DATA_ROOT: Final = "/var/lib/nerdctl"
DEFAULT_CNI_NETCONF_PATH: Final = "/etc/cni/net.d"

LABEL_NETWORKS: Final = "nerdctl/networks"
LABEL_MOUNTS: Final = "nerdctl/mounts"
LABEL_ANONYMOUS_VOLUMES: Final = "nerdctl/anonymous-volumes"
LABEL_DEFAULT_NETWORK: Final = "nerdctl/default-network"
# nerdctl's default network, and the two network modes that are not CNI networks.
KEPT_NETWORKS: Final = frozenset({"bridge", "host", "none"})
NETCONF_SUFFIXES: Final = (".conf", ".conflist", ".json")
# containerd's identifier rule, which nerdctl applies to volume names.
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
_IDENTIFIER_MAX = 76
# How long to wait for a lock nerdctl holds before giving up on that half of the prune.
LOCK_TIMEOUT = 5.0
_LOCK_POLL = 0.05

# Pruning filter: (created at in Unix ns, labels) -> may this object go?
Matches = Callable[[int, Mapping[str, str]], bool]


@attrs.frozen
class NerdctlPaths:
    """Where nerdctl keeps its state (its `--data-root` and `--cni-netconfpath`)."""

    data_root: str = DEFAULT_DATA_ROOT
    cni_netconf_path: str = DEFAULT_CNI_NETCONF_PATH


DEFAULT_NERDCTL_PATHS: Final = NerdctlPaths()


def address_hash(address: str) -> str | None:
    """nerdctl's short hash of a containerd address: SHA-256 of the socket path with
    `unix://` removed and symlinks resolved, first 8 hex digits. None for an address
    that is not a unix socket (nerdctl keeps no state for one)."""
    path = address.removeprefix("unix://")
    if "://" in path:
        return None
    resolved = os.path.realpath(path)
    return hashlib.sha256(resolved.encode()).hexdigest()[:8]


def data_store(paths: NerdctlPaths, address: str) -> str | None:
    """nerdctl's data store for the containerd at `address` (it may not exist)."""
    digest = address_hash(address)
    return None if digest is None else os.path.join(paths.data_root, digest)


@attrs.frozen
class Network:
    """A CNI network configuration file. `nerdctl_id` is None when nerdctl did not make it."""

    name: str
    nerdctl_id: str | None
    labels: Mapping[str, str]
    file: str
    bridge: str | None
    created_at: int


@attrs.frozen
class Volume:
    """A volume of nerdctl's volume store; `labels` is None when volume.json is unreadable."""

    name: str
    path: str
    labels: Mapping[str, str] | None
    created_at: int

    @property
    def anonymous(self) -> bool:
        """nerdctl labelled it anonymous: the label is there, with an empty value."""
        value = None if self.labels is None else self.labels.get(LABEL_ANONYMOUS_VOLUMES)
        return value is not None and not value


class LabelError(ValueError):
    """A container's nerdctl label cannot be read: what it uses is unknown."""


class PruneRecord(Protocol):
    """Where a prune writes down what it did (a `prune.PruneReport` is one)."""

    networks_deleted: list[str]
    volumes_deleted: list[str]
    space_reclaimed: int
    errors: list[str]


async def prune_nerdctl_state(
    client: ContainerdClient,
    namespace: str,
    matches: Matches,
    *,
    gone: Collection[Container],
    volumes: bool,
    dry_run: bool,
    paths: NerdctlPaths,
    report: PruneRecord,
) -> None:
    """Remove (or, in a dry run, list) nerdctl's unused networks and, with `volumes`,
    its unused anonymous volumes of `namespace`.

    Args:
      client: containerd; its address locates nerdctl's data store.
      namespace: The namespace pruned.
      matches: The prune's filter, applied to networks and volumes (their nerdctl
        labels; the file's modification time as creation time).
      gone: The containers of `namespace` this prune removed (in a dry run: would
        remove); they count as gone even if containerd still lists them.
      volumes: Also prune anonymous volumes.
      dry_run: List only.
      paths: Where nerdctl keeps its state.
      report: Gets the names removed (or that would be), the volumes' space, and the
        failures.

    Never raises for a failure: each is one line of `report.errors`.
    """
    pruning = _Pruning(client, namespace, matches, gone, dry_run, report)
    store = data_store(paths, client.address)
    if store is None or not await trio.to_thread.run_sync(os.path.isdir, store):
        return  # nerdctl never ran against this containerd
    try:
        await pruning.networks(paths.cni_netconf_path)
    except OSError as error:
        report.errors.append(f"networks: {error}")
    if volumes:
        try:
            await pruning.volumes(os.path.join(store, "volumes", namespace))
        except OSError as error:
            report.errors.append(f"volumes: {error}")


@attrs.define
class _Pruning:
    """One prune of nerdctl's state, and what it did so far."""

    client: ContainerdClient
    namespace: str
    matches: Matches
    gone: Collection[Container]
    dry_run: bool
    report: PruneRecord

    @property
    def gone_ids(self) -> set[str]:
        return {container.id for container in self.gone}

    async def networks(self, netconf: str) -> None:
        if not await trio.to_thread.run_sync(os.path.isdir, netconf):
            return
        errors = self.report.errors
        try:
            remaining = await _containers_everywhere(self.client, self.namespace, self.gone_ids)
            used = used_networks(remaining)
        except ContainerdError as error:
            errors.append(f"networks: cannot tell which networks are in use: {error}")
            return
        except LabelError as error:
            errors.append(f"networks: {error}; no network was pruned")
            return
        async with _locked(netconf, dry_run=self.dry_run, what="networks", errors=errors) as held:
            if not held:
                return
            for network in await trio.to_thread.run_sync(read_networks, netconf, self.namespace):
                if not prunable_network(network, used):
                    continue
                if not self.matches(network.created_at, network.labels):
                    continue
                if network.name in self.report.networks_deleted:
                    continue  # the same name in the namespace's directory: nerdctl uses one
                if self.dry_run or await _remove_network(network, errors):
                    self.report.networks_deleted.append(network.name)

    async def volumes(self, volume_store: str) -> None:
        if not await trio.to_thread.run_sync(os.path.isdir, volume_store):
            return
        errors = self.report.errors
        anonymous = _anonymous_volumes_of(self.gone)
        # As nerdctl: the store stays locked from listing the containers to the last
        # removal, so a container nerdctl creates meanwhile cannot take a volume we remove.
        async with _locked(
            volume_store, dry_run=self.dry_run, what="volumes", errors=errors
        ) as held:
            if not held:
                return
            try:
                listed = await self.client.containers(self.namespace)
                used = used_volumes(c for c in listed if c.id not in self.gone_ids)
            except ContainerdError as error:
                errors.append(f"volumes: cannot tell which volumes are in use: {error}")
                return
            except LabelError as error:
                errors.append(f"volumes: {error}; no volume was pruned")
                return
            for volume in await trio.to_thread.run_sync(read_volumes, volume_store):
                if used.uses(volume) or not (volume.anonymous or volume.name in anonymous):
                    continue
                if not self.matches(volume.created_at, volume.labels or {}):
                    continue
                if self.dry_run:
                    self.report.volumes_deleted.append(volume.name)
                    continue
                try:
                    size = await trio.to_thread.run_sync(remove_volume, volume.path)
                except FileNotFoundError:
                    continue  # someone else removed it
                except OSError as error:
                    errors.append(f"volume {volume.name}: {error}")
                    continue
                self.report.volumes_deleted.append(volume.name)
                self.report.space_reclaimed += size


# -- networks ---------------------------------------------------------------------------


async def _containers_everywhere(
    client: ContainerdClient, namespace: str, gone_ids: Collection[str]
) -> list[Container]:
    """Every container of every namespace, but those of `namespace` in `gone_ids`."""
    containers: list[Container] = []
    for each in await client.namespaces():
        listed = await client.containers(each.name)
        if each.name == namespace:
            listed = [c for c in listed if c.id not in gone_ids]
        containers.extend(listed)
    return containers


def used_networks(containers: Iterable[Container]) -> set[str]:
    """The network names (or ids) the containers' `nerdctl/networks` labels name.

    Raises:
      LabelError: a label that is not a JSON list of strings.
    """
    used: set[str] = set()
    for container in containers:
        text = container.labels.get(LABEL_NETWORKS)
        if text is None:
            continue
        names = _json_or_none(text)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise LabelError(
                f"container {container.id} has an unreadable {LABEL_NETWORKS} label {text!r}"
            )
        used.update(names)
    return used


def prunable_network(network: Network, used: Collection[str]) -> bool:
    """nerdctl made it, it is not a default network, and no container names it (by name,
    id or 12-digit short id)."""
    if network.nerdctl_id is None:
        return False
    if network.name in KEPT_NETWORKS or LABEL_DEFAULT_NETWORK in network.labels:
        return False
    references = {network.name, network.nerdctl_id, network.nerdctl_id[:12]}
    return not references & set(used)


def read_networks(netconf: str, namespace: str) -> list[Network]:
    """The CNI configurations nerdctl sees in `namespace`: those directly in `netconf` and
    in `netconf/<namespace>`, by file name. Unreadable files are skipped (logged)."""
    files: list[str] = []
    for directory in (netconf, os.path.join(netconf, namespace)):
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        files.extend(
            entry.path
            for entry in entries
            if entry.name.endswith(NETCONF_SUFFIXES) and not entry.is_dir()
        )
    networks = []
    for file in sorted(files):
        network = _read_network(file)
        if network is not None:
            networks.append(network)
    return networks


def _read_network(file: str) -> Network | None:
    try:
        with open(file, "rb") as stream:
            created_at = os.fstat(stream.fileno()).st_mtime_ns
            config = _json_or_none(stream.read())
    except OSError as error:
        LOGGER.info("prune: skipping network configuration %s: %s", file, error)
        return None
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        LOGGER.info("prune: skipping %s: not a CNI network configuration", file)
        return None
    nerdctl_id = config.get("nerdctlID")
    labels = config.get("nerdctlLabels")
    plugins = config.get("plugins") if "plugins" in config else [config]
    first = plugins[0] if isinstance(plugins, list) and plugins else None
    bridge = None
    if isinstance(first, dict) and first.get("type") == "bridge":
        name = first.get("bridge")
        bridge = name if isinstance(name, str) and name else None
    return Network(
        name=config["name"],
        nerdctl_id=nerdctl_id if isinstance(nerdctl_id, str) else None,
        labels=_string_map(labels),
        file=file,
        bridge=bridge,
        created_at=created_at,
    )


async def _remove_network(network: Network, errors: list[str]) -> bool:
    """Remove a network's file, then its bridge. False if the file stays (or was gone)."""
    try:
        await trio.to_thread.run_sync(os.remove, network.file)
    except FileNotFoundError:
        return False  # someone else removed it
    except OSError as error:
        errors.append(f"network {network.name}: {error}")
        return False
    if network.bridge is not None:
        try:
            await trio.to_thread.run_sync(delete_bridge, network.bridge)
        except OSError as error:
            errors.append(
                f"network {network.name}: removed, but not its bridge {network.bridge}: {error}"
            )
    return True


# Netlink (linux/rtnetlink.h): delete a link by index, and ask for an acknowledgement.
_RTM_DELLINK = 17
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_NETLINK_TIMEOUT = 5.0


def delete_bridge(name: str) -> bool:
    """Delete the bridge interface `name` of this network namespace, as nerdctl does when
    it removes a network. False (and nothing done) when there is no such interface or it
    is not a bridge.

    Raises:
      OSError: the kernel refused.
    """
    if not os.path.isdir(f"/sys/class/net/{name}/bridge"):
        return False
    try:
        index = socket.if_nametoindex(name)
    except OSError:
        return False
    request = _NLMSGHDR.pack(
        _NLMSGHDR.size + _IFINFOMSG.size, _RTM_DELLINK, _NLM_F_REQUEST | _NLM_F_ACK, 1, 0
    ) + _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(_NETLINK_TIMEOUT)
        sock.bind((0, 0))
        sock.send(request)
        reply = sock.recv(65536)
    _, kind, _, _, _ = _NLMSGHDR.unpack_from(reply)
    if kind != _NLMSG_ERROR:
        raise OSError(errno.EPROTO, f"unexpected netlink reply {kind} deleting {name}")
    (status,) = struct.unpack_from("=i", reply, _NLMSGHDR.size)
    if status == -errno.ENODEV:
        return False
    if status:
        raise OSError(-status, f"cannot delete interface {name}: {os.strerror(-status)}")
    return True


# -- volumes ----------------------------------------------------------------------------


@attrs.frozen
class UsedVolumes:
    """What remaining containers mount: volumes by name, and mount sources (paths)."""

    names: frozenset[str]
    sources: frozenset[str]

    def uses(self, volume: Volume) -> bool:
        if volume.name in self.names:
            return True
        path = os.path.normpath(volume.path)
        inside = path + os.sep
        return any(source == path or source.startswith(inside) for source in self.sources)


def used_volumes(containers: Iterable[Container]) -> UsedVolumes:
    """The volumes the containers' nerdctl labels say they mount.

    Raises:
      LabelError: a `nerdctl/mounts...` or `nerdctl/anonymous-volumes` label that is
        not what nerdctl writes.
    """
    names: set[str] = set()
    sources: set[str] = set()
    for container in containers:
        for mount in _mounts(container):
            kind, name, source = (_field(mount, key) for key in ("Type", "Name", "Source"))
            if isinstance(kind, str) and kind.lower() == "volume" and isinstance(name, str):
                names.add(name)
            if isinstance(source, str) and source:
                sources.add(os.path.normpath(source))
        text = container.labels.get(LABEL_ANONYMOUS_VOLUMES)
        if text is not None:
            listed = _json_or_none(text)
            if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
                raise LabelError(
                    f"container {container.id} has an unreadable "
                    f"{LABEL_ANONYMOUS_VOLUMES} label {text!r}"
                )
            names.update(listed)
    return UsedVolumes(frozenset(names), frozenset(sources))


def _mounts(container: Container) -> list[Mapping[str, object]]:
    """The mount points of `nerdctl/mounts` (a JSON list) and of any per-mount label
    under that key (one JSON object each; a list is taken too)."""
    mounts: list[Mapping[str, object]] = []
    for key, text in sorted(container.labels.items()):
        if not key.startswith(LABEL_MOUNTS) or text.strip() in {"", "null"}:
            continue
        value = _json_or_none(text)
        if isinstance(value, dict) and key != LABEL_MOUNTS:
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise LabelError(f"container {container.id} has an unreadable {key} label {text!r}")
        mounts.extend(value)
    return mounts


def _field(mount: Mapping[str, object], key: str) -> object:
    """A field of a Go-marshalled struct, matched as Go's json does (case-insensitive)."""
    if key in mount:
        return mount[key]
    folded = key.casefold()
    return next((value for name, value in mount.items() if name.casefold() == folded), None)


def _anonymous_volumes_of(containers: Iterable[Container]) -> set[str]:
    names: set[str] = set()
    for container in containers:
        listed = _json_or_none(container.labels.get(LABEL_ANONYMOUS_VOLUMES, "[]"))
        if isinstance(listed, list):
            names.update(name for name in listed if isinstance(name, str))
    return names


def read_volumes(volume_store: str) -> list[Volume]:
    """The volumes of one namespace's store, by name: directories with a valid name, a
    `_data` directory and a `volume.json` (others are skipped, and logged)."""
    volumes = []
    for entry in sorted(os.scandir(volume_store), key=lambda e: e.name):
        name = entry.name
        valid = len(name) <= _IDENTIFIER_MAX and _IDENTIFIER.fullmatch(name)
        data = os.path.join(entry.path, "_data")
        if not valid or not entry.is_dir(follow_symlinks=False) or not os.path.isdir(data):
            LOGGER.info("prune: skipping %s: not a nerdctl volume", entry.path)
            continue
        try:
            with open(os.path.join(entry.path, "volume.json"), "rb") as stream:
                created_at = os.fstat(stream.fileno()).st_mtime_ns
                document = _json_or_none(stream.read())
        except OSError as error:
            LOGGER.info("prune: skipping volume %s: %s", entry.path, error)
            continue
        labels = document.get("labels") if isinstance(document, dict) else None
        volumes.append(
            Volume(
                name=name,
                path=entry.path,
                labels=_string_map(labels) if isinstance(labels, dict) else None,
                created_at=created_at,
            )
        )
    return volumes


def remove_volume(path: str) -> int:
    """Remove a volume directory and return the bytes of its content (the files of
    `_data`, as nerdctl sizes a volume), measured first. `_data` goes before
    `volume.json`, so a volume that cannot be removed entirely stays a volume nerdctl
    can list.

    Raises:
      FileNotFoundError: the volume is gone already.
      OSError: something in it could not be removed (what went before stays gone).
    """
    size = tree_size(os.path.join(path, "_data"))
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(os.path.join(path, "_data"))
    shutil.rmtree(path)
    return size


def tree_size(path: str) -> int:
    """Bytes of the regular files under `path`, each inode once, counting only inodes
    whose every hard link is under `path` (removing it frees exactly these)."""
    seen: dict[tuple[int, int], list[int]] = {}  # (dev, ino) -> [size, links, found]
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            record = seen.setdefault((info.st_dev, info.st_ino), [info.st_size, info.st_nlink, 0])
            record[2] += 1
    return sum(size for size, links, found in seen.values() if found >= links)


# -- helpers ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _locked(
    directory: str, *, dry_run: bool, what: str, errors: list[str]
) -> AsyncGenerator[bool]:
    """Hold nerdctl's lock on `directory` (its `flock`); yields False, with a line in
    `errors`, when it cannot be had within `LOCK_TIMEOUT`. A dry run takes no lock."""
    if dry_run:
        yield True
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        held = await _flock(fd)
        if not held:
            errors.append(
                f"{what}: {directory} stayed locked (by nerdctl?) for {LOCK_TIMEOUT:g}s; "
                f"no {what.removesuffix('s')} was pruned"
            )
        yield held
    finally:
        os.close(fd)  # which releases the lock


async def _flock(fd: int) -> bool:
    deadline = trio.current_time() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if trio.current_time() >= deadline:
                return False
            await trio.sleep(_LOCK_POLL)
        else:
            return True


def _json_or_none(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
