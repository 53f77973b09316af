"""The RPC layer's messages: events serialized once and shared, renderings appended."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evactors._generated.evactors.v1 import system_service_pb2 as pb
from evactors.events.model import EventType, SystemEvent
from evactors.rpc.messages import EventEncoder, event_message


def event(sequence: int = 7) -> SystemEvent:
    return SystemEvent(
        sequence=sequence,
        timestamp=1_733_329_200_123_456_789,
        namespace="default",
        topic="/tasks/exit",
        status="die",
        type=EventType.TASK_EVENT,
        container_id="c1",
        event_data='{"container_id":"c1","exit_status":3}',
        metadata={"name": "web", "exit_code": "3"},
        labels={"nerdctl/name": "web"},
    )


def test_an_event_is_serialized_once_for_every_stream():
    encoder = EventEncoder()
    first = encoder.encode(event())
    assert encoder.encode(event()) is first
    assert pb.SystemEvent.FromString(first) == event_message(event())


@given(st.text(max_size=400))
def test_a_rendering_is_appended_as_the_formatted_field(formatted):
    encoded = EventEncoder().encode(event(), formatted)
    assert pb.SystemEvent.FromString(encoded) == event_message(event(), formatted)


def test_the_cache_keeps_the_latest_events_only():
    encoder = EventEncoder(size=2)
    kept = [encoder.encode(event(sequence)) for sequence in (1, 2, 3)]
    assert encoder.encode(event(3)) is kept[2]
    assert encoder.encode(event(2)) is kept[1]
    again = encoder.encode(event(1))  # evicted: serialized anew, same bytes
    assert again == kept[0]
    assert again is not kept[0]
