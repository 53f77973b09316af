"""`evactors info` and `evactors system prune` as processes, against a server on the
private containerd. Each test works in a namespace of its own."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid

import pytest
import trio

from evactors.testing import build_busybox_image
from evactors.units import human_size

EVACTORS = [sys.executable, "-m", "evactors"]


@pytest.fixture
def namespace(containerd, busybox_image):
    """A namespace with the busybox image and one stopped (never started) container."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    containerd.import_image(busybox_image.path, namespace=name)
    containerd.create(busybox_image.name, "stopped1", "true", namespace=name)
    yield name
    containerd.delete_container("stopped1", namespace=name)


async def evactors_cli(daemon, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    address = ["--address", str(daemon.addresses[0])]
    with trio.fail_after(30):
        return await trio.run_process(
            [*EVACTORS, *args, *address],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_info_human_readable_json_and_template(evactors, containerd, namespace):
    version = containerd.version()
    human = await evactors_cli(evactors, "info", "--namespace", namespace)
    assert human.returncode == 0, human.stderr
    text = human.stdout.decode()
    assert f" Namespace:\t{namespace}\n" in text
    assert f" Server Version: {version}\n" in text
    assert " Containers: 1\n" in text
    assert "  Stopped: 1\n" in text
    assert " Images: 1\n" in text
    assert "evactors:\n Version: " in text

    as_json = await evactors_cli(evactors, "info", "-n", namespace, "--format", "json")
    record = json.loads(as_json.stdout)
    assert record["ServerVersion"] == version
    assert (record["Containers"], record["ContainersStopped"]) == (1, 1)
    assert namespace in record["Namespaces"]
    assert {"Type", "ID", "Status"} <= record["Plugins"][0].keys()
    assert record["Stats"]["ContainerdConnected"] is True

    template = await evactors_cli(
        evactors, "info", "-n", namespace, "--format", "{{.ServerVersion}} {{.Containers}}"
    )
    assert template.stdout.decode() == f"{version} 1\n"


async def test_info_rejects_a_bad_template_before_calling(evactors):
    result = await evactors_cli(evactors, "info", "--format", "{{.Nope}}")
    assert result.returncode == 2
    assert 'unknown field ".Nope"' in result.stderr.decode()


async def test_prune_asks_first_and_does_nothing_unless_told_yes(evactors, containerd, namespace):
    declined = await evactors_cli(evactors, "system", "prune", "-n", namespace, stdin=b"n\n")
    assert declined.returncode == 0
    shown = declined.stdout.decode()
    assert shown.startswith(f"WARNING! This will remove, in namespace {namespace}:\n")
    assert "  container stopped1\n" in shown
    assert shown.endswith("Are you sure you want to continue? [y/N] ")
    assert containerd.containers(namespace) == ["stopped1"]

    accepted = await evactors_cli(evactors, "system", "prune", "-n", namespace, stdin=b"y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "Deleted Containers:\nstopped1\n\n" in accepted.stdout.decode()
    assert "Total reclaimed space: 0B\n" in accepted.stdout.decode()
    assert containerd.containers(namespace) == []


async def test_prune_dry_run_and_force(evactors, containerd, busybox_image, namespace, tmp_path):
    dry = await evactors_cli(evactors, "system", "prune", "-n", namespace, "--all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.decode() == (
        f"Would Delete Containers:\nstopped1\n\nWould Delete Images:\n{busybox_image.name}\n\n"
    )
    assert containerd.containers(namespace) == ["stopped1"]

    # An image with blobs of its own, so that some space is really reclaimed (busybox's
    # blobs stay: namespace "default" holds the same image).
    payload = tmp_path / "payload"
    payload.write_bytes(secrets.token_bytes(30_000))
    own = build_busybox_image(
        tmp_path / "own.tar", name="example.com/evactors/own:v1", busybox=payload
    )
    containerd.import_image(own.path, namespace=namespace)

    forced = await evactors_cli(evactors, "system", "prune", "-n", namespace, "-a", "-f")
    assert forced.returncode == 0, forced.stderr
    containers, images, total = forced.stdout.decode().split("\n\n")
    assert containers == "Deleted Containers:\nstopped1"
    assert images.startswith("Deleted Images:\n")
    assert set(images.splitlines()[1:]) == {busybox_image.name, own.name}
    assert total == f"Total reclaimed space: {human_size(own.size)}\n"
    assert containerd.containers(namespace) == []


async def test_prune_reports_a_bad_filter_and_removes_nothing(evactors, containerd, namespace):
    result = await evactors_cli(
        evactors, "system", "prune", "-n", namespace, "-f", "--filter", "colour=red"
    )
    assert result.returncode == 1
    assert 'INVALID_ARGUMENT: invalid prune filter "colour=red"' in result.stderr.decode()
    assert containerd.containers(namespace) == ["stopped1"]
