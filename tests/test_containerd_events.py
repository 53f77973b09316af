"""End to end: the project's own client subscribed to a real containerd sees a real
container's lifecycle, decodes every payload to its type, and renders it as `ctr events`
prints it."""

from __future__ import annotations

import trio

from evactors.containerd import (
    RawPayload,
    go_time_string,
    open_containerd,
    payload_json,
)
from evactors.containerd.events import PAYLOAD_TYPES

from ._ctd_helpers import collect_until, ctr_events, wait_until_live

LIFECYCLE = {
    "/containers/create": "containerd.events.ContainerCreate",
    "/tasks/create": "containerd.events.TaskCreate",
    "/tasks/start": "containerd.events.TaskStart",
    "/tasks/exit": "containerd.events.TaskExit",
    "/tasks/delete": "containerd.events.TaskDelete",
    "/containers/delete": "containerd.events.ContainerDelete",
}


def about(envelope, container_id):
    payload = envelope.payload
    return container_id in {getattr(payload, name, None) for name in ("id", "container_id", "key")}


async def test_lifecycle_of_a_real_container_is_decoded_and_rendered_like_ctr(
    containerd, busybox_image, container_id
):
    async with (
        open_containerd(str(containerd.address)) as client,
        client.subscribe() as events,
    ):
        await wait_until_live(client, events)
        async with ctr_events(containerd) as ctr:
            result = await trio.to_thread.run_sync(
                lambda: containerd.run(
                    busybox_image.name,
                    container_id,
                    "sh",
                    "-c",
                    "exit 3",
                    labels={"nerdctl/name": "web"},
                    check=False,
                )
            )
            assert result.returncode == 3
            seen = await collect_until(events, "/containers/delete", container_id)

    ours = [e for e in seen if about(e, container_id)]
    assert [e.topic for e in ours if e.topic in LIFECYCLE] == list(LIFECYCLE)
    for envelope in ours:
        assert envelope.namespace == "default"
        assert not isinstance(envelope.payload, RawPayload), envelope
        assert type(envelope.payload) is PAYLOAD_TYPES[envelope.type_url]
        if envelope.topic in LIFECYCLE:
            assert envelope.type_url == LIFECYCLE[envelope.topic]

    by_topic = {e.topic: e.payload for e in ours}
    create = by_topic["/containers/create"]
    assert (create.id, create.image) == (container_id, busybox_image.name)
    assert create.runtime.name == "io.containerd.runc.v2"
    exit_ = by_topic["/tasks/exit"]
    assert (exit_.container_id, exit_.id, exit_.exit_status) == (container_id, container_id, 3)
    assert exit_.pid == by_topic["/tasks/start"].pid > 0
    assert exit_.exited_at.seconds > 0
    delete = by_topic["/tasks/delete"]
    assert (delete.container_id, delete.exit_status) == (container_id, 3)
    assert by_topic["/containers/delete"].id == container_id

    # The same events as `ctr events` printed them: timestamp, namespace, topic and the
    # payload JSON, character for character.
    ctr_lines = [line for line in ctr.lines if container_id in line.payload]
    assert [(line.topic, line.payload) for line in ctr_lines] == [
        (e.topic, payload_json(e.payload)) for e in ours
    ]
    assert [line.timestamp for line in ctr_lines] == [go_time_string(e.timestamp) for e in ours]
    exit_json = next(line.payload for line in ctr_lines if line.topic == "/tasks/exit")
    assert f'"container_id":"{container_id}"' in exit_json
    assert '"exit_status":3,"exited_at":"' in exit_json


async def test_an_unknown_type_url_is_kept_as_a_raw_payload(containerd):
    async with (
        open_containerd(str(containerd.address)) as client,
        client.subscribe(['topic=="/evactors/custom"', 'topic=="/evactors/probe"']) as events,
    ):
        await wait_until_live(client, events)
        payload = RawPayload("example.com/acme.Unheard", b"\x08\x96\x01 not protobuf \xff")
        await client.publish("acme", "/evactors/custom", payload)
        with trio.fail_after(10):
            envelope = await anext(events)
    assert (envelope.namespace, envelope.topic) == ("acme", "/evactors/custom")
    assert envelope.payload == payload
    assert envelope.type_url == "example.com/acme.Unheard"
    assert payload_json(envelope.payload) == (
        '{"type_url":"example.com/acme.Unheard","value":"CJYBIG5vdCBwcm90b2J1ZiD/"}'
    )
