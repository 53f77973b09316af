"""Build a tiny, deterministic OCI image-layout tarball holding busybox.

No registry is reachable on the test machines, so the test bed builds its own
image: one uncompressed layer with ``bin/busybox`` and a few relative symlinks
to it, an image config, a manifest and an ``index.json`` whose manifest entry
names the image (``io.containerd.image.name``) so that ``ctr images import``
registers it under that name.

Everything is pure standard library. The bytes are deterministic (mtime 0,
uid/gid 0, sorted entries, sorted JSON keys), so the same inputs always give
the same digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from pathlib import Path

import attrs

__all__ = ["BUSYBOX_APPLETS", "ImageInfo", "build_busybox_image"]

#: Applets linked to ``busybox`` inside ``bin/`` of the image.
BUSYBOX_APPLETS: tuple[str, ...] = (
    "cat",
    "echo",
    "env",
    "false",
    "ls",
    "sh",
    "sleep",
    "top",
    "true",
)

_MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
_MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
_MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"

_ARCHES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@attrs.frozen
class ImageInfo:
    """What :func:`build_busybox_image` wrote.

    Digests are ``"sha256:<hex>"`` strings; ``size`` is the total number of
    bytes of all blobs (layer, config and manifest); ``path`` is the tarball.
    """

    name: str
    manifest_digest: str
    config_digest: str
    layer_digest: str
    size: int
    path: Path


def _oci_arch() -> str:
    machine = platform.machine().lower()
    return _ARCHES.get(machine, machine)


def _oci_os() -> str:
    return platform.system().lower() or "linux"


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tarinfo(name: str, type_: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _layer_bytes(busybox: Path) -> bytes:
    """Return the uncompressed layer tar: ``bin/``, ``bin/busybox`` and symlinks."""
    payload = busybox.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo("bin", tarfile.DIRTYPE, 0o755))
        tar.addfile(
            _tarinfo("bin/busybox", tarfile.REGTYPE, 0o755, len(payload)),
            io.BytesIO(payload),
        )
        for applet in sorted(BUSYBOX_APPLETS):
            link = _tarinfo(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tarinfo(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))


def build_busybox_image(
    path: Path,
    *,
    name: str = "docker.io/library/busybox:latest",
    busybox: Path = Path("/bin/busybox"),
) -> ImageInfo:
    """Write an OCI image-layout tarball with a busybox layer to ``path``.

    ``busybox`` must be a static binary (it is the only file in the image).
    The image is named ``name`` (``io.containerd.image.name``), and its tag (the
    part after the last ``:`` following the last ``/``, default ``latest``) is
    set as ``org.opencontainers.image.ref.name``. The file at ``path`` is
    overwritten; nothing else is written and no handles stay open.
    """
    layer = _layer_bytes(busybox)
    layer_digest = _digest(layer)

    config = {
        "architecture": _oci_arch(),
        "os": _oci_os(),
        "config": {
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_bytes = _json_bytes(config)
    config_digest = _digest(config_bytes)

    manifest = {
        "schemaVersion": 2,
        "mediaType": _MEDIA_MANIFEST,
        "config": {
            "mediaType": _MEDIA_CONFIG,
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": _MEDIA_LAYER, "digest": layer_digest, "size": len(layer)},
        ],
    }
    manifest_bytes = _json_bytes(manifest)
    manifest_digest = _digest(manifest_bytes)

    last = name.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": _MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": _MEDIA_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": _oci_arch(), "os": _oci_os()},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            },
        ],
    }

    blobs = {
        layer_digest: layer,
        config_digest: config_bytes,
        manifest_digest: manifest_bytes,
    }
    with (
        path.open("wb") as fh,
        tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for dirname in ("blobs", "blobs/sha256"):
            tar.addfile(_tarinfo(dirname, tarfile.DIRTYPE, 0o755))
        for digest in sorted(blobs):
            _tar_member(tar, "blobs/sha256/" + digest.removeprefix("sha256:"), blobs[digest])
        _tar_member(tar, "index.json", _json_bytes(index))
        _tar_member(tar, "oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))

    return ImageInfo(
        name=name,
        manifest_digest=manifest_digest,
        config_digest=config_digest,
        layer_digest=layer_digest,
        size=sum(len(b) for b in blobs.values()),
        path=path,
    )
