"""Micro-benchmarks of evactors' hot paths, in one process, with realistic events.

    .venv/bin/python -m bench.micro [--quick] [--json FILE]

Each figure is the median over several repetitions (`timeit`, each repetition long
enough to time well) of the cost of one operation, in us. The events are the benchmark's
workload (`bench.workload`: create, start, exit, delete, destroy of one container, with
the container's name, image and labels known), so each figure is the mean over that
cycle of five.

Per event, once (the converter):
- `decode`: parse the serialized `Envelope` as it comes off the wire, and
  `containerd.events.decode_envelope` (the typed payload by its bare type URL);
- `facts`: `containerd.events.payload_facts`;
- `normalize`: `events.converter.Normalizer.normalize` (status, type, metadata, the
  payload's `ctr events` JSON);
- `convert`: all three, what the converter spends on one event besides lookups.

Per client and event:
- `filter`: `events.filters.parse_filters([...]).matches(event)` for a few filters;
- `template`: `EventTemplate.render` for a format (only clients that ask for one);
- `serialize`: `rpc.messages.event_message(event).SerializeToString()`, the wire bytes
  of one delivery;
- `send`: what evactors' gRPC server (`evactors.grpc.Server`) spends sending one
  streamed message: a trio server in this process streams the same serialized
  `SystemEvent` to a grpcio client in another process, and this process's CPU time
  over the stream, divided by the messages, is the cost per message (HTTP/2 framing,
  flow control, the socket write, trio's scheduling).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from evactors._generated.containerd.services.events.v1 import events_pb2
from evactors.containerd.events import decode_envelope, encode_payload, payload_facts
from evactors.events.converter import ContainerInfo, Normalizer
from evactors.events.filters import parse_filters
from evactors.events.template import compile_template
from evactors.rpc.messages import event_message

from . import workload

CONTAINER = ContainerInfo.from_labels(
    workload.IMAGE,
    {"nerdctl/name": "web-1", "app": "web", "tier": "frontend", "owner": "bench"},
)
FILTERS = {
    "filter namespace=bench": ["namespace=bench"],
    "filter namespace=bench, event=start": ["namespace=bench", "event=start"],
    "filter type=container, label=app=web, image=busybox": [
        "type=container",
        "label=app=web",
        "image=busybox",
    ],
}
TEMPLATES = {
    "template {{json .}}": "{{json .}}",
    "template {{.ID}} {{.Status}} {{.Metadata.name}}": "{{.ID}} {{.Status}} {{.Metadata.name}}",
}


def wire_envelopes() -> list[bytes]:
    """One serialized Envelope per topic of the cycle, as containerd sends them."""
    envelopes = []
    for n, topic in enumerate(workload.CYCLE):
        payload = workload.payload_for(topic, workload.container_id(7), n)
        envelope = events_pb2.Envelope(
            timestamp=Timestamp(seconds=1_765_000_000, nanos=123_456_789),
            namespace=workload.NAMESPACE,
            topic=topic,
            event=encode_payload(payload),
        )
        envelopes.append(envelope.SerializeToString())
    return envelopes


def per_op_us(
    function: Callable[[], object], operations: int, repeat: int
) -> tuple[float, list[float]]:
    """Median us per operation of `function` (which does `operations` operations)."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()  # enough calls for 0.2 s
    times = timer.repeat(repeat=repeat, number=number)
    per_op = [t / number / operations * 1e6 for t in times]
    return statistics.median(per_op), per_op


def pure_benchmarks(repeat: int) -> dict[str, float]:
    wire = wire_envelopes()
    count = len(wire)
    envelopes = [decode_envelope(events_pb2.Envelope.FromString(raw)) for raw in wire]
    facts = [payload_facts(envelope.payload) for envelope in envelopes]
    normalizer = Normalizer()
    events = [
        normalizer.normalize(envelope, fact, CONTAINER)
        for envelope, fact in zip(envelopes, facts, strict=True)
    ]
    pairs = list(zip(envelopes, facts, strict=True))

    def decode() -> None:
        for raw in wire:
            decode_envelope(events_pb2.Envelope.FromString(raw))

    def facts_of() -> None:
        for envelope in envelopes:
            payload_facts(envelope.payload)

    def normalize() -> None:
        for envelope, fact in pairs:
            normalizer.normalize(envelope, fact, CONTAINER)

    def convert() -> None:
        for raw in wire:
            envelope = decode_envelope(events_pb2.Envelope.FromString(raw))
            normalizer.normalize(envelope, payload_facts(envelope.payload), CONTAINER)

    def serialize() -> None:
        for event in events:
            event_message(event).SerializeToString()

    cases: dict[str, Callable[[], None]] = {
        "decode (parse Envelope + decode_envelope)": decode,
        "facts (payload_facts)": facts_of,
        "normalize (Normalizer.normalize)": normalize,
        "convert (decode + facts + normalize)": convert,
    }
    for name, strings in FILTERS.items():
        match = parse_filters(strings).matches
        cases[name] = lambda match=match: [match(event) for event in events]
    for name, text in TEMPLATES.items():
        render = compile_template(text).render
        cases[name] = lambda render=render: [render(event) for event in events]
    cases["serialize (event_message + SerializeToString)"] = serialize

    results = {}
    for name, function in cases.items():
        results[name], _ = per_op_us(function, count, repeat)
        print(f"  {results[name]:8.2f} us  {name}", file=sys.stderr, flush=True)
    return results


SEND_CLIENT = """
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_stream(sys.argv[2], request_serializer=None, response_deserializer=None)
count = sum(1 for _ in call(b""))
print(count, flush=True)
"""


def send_benchmark(messages: int) -> float:
    """CPU us evactors' gRPC server spends per streamed message (see the module doc)."""
    import trio

    from evactors._generated.evactors.v1.system_service_grpc import (
        SystemServiceServicer,
    )
    from evactors.grpc import Server, UnixAddress

    envelope = decode_envelope(events_pb2.Envelope.FromString(wire_envelopes()[1]))
    event = Normalizer().normalize(envelope, payload_facts(envelope.payload), CONTAINER)
    message = event_message(event).SerializeToString()
    cpu: list[float] = []

    class Streamer(SystemServiceServicer):
        async def GetSystemEvents(self, request: Any) -> Any:  # type: ignore[override]
            start = time.process_time()
            try:
                for _ in range(messages):
                    yield message
            finally:
                cpu.append(time.process_time() - start)

    async def main(path: str) -> int:
        server = Server(Streamer())
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, [UnixAddress(path)])
            client = await trio.run_process(
                [
                    sys.executable,
                    "-c",
                    SEND_CLIENT,
                    f"unix:{path}",
                    "/evactors.v1.SystemService/GetSystemEvents",
                ],
                capture_stdout=True,
            )
            server.shutdown()
        return int(client.stdout)

    with tempfile.TemporaryDirectory(prefix="bench-send-") as folder:
        received = trio.run(main, str(Path(folder) / "send.sock"))
    if received != messages or not cpu:
        raise RuntimeError(f"the send benchmark's client got {received} of {messages}")
    return cpu[0] / messages * 1e6


def run(quick: bool) -> dict[str, float]:
    repeat = 3 if quick else 7
    print("micro-benchmarks (median us per operation):", file=sys.stderr, flush=True)
    results = pure_benchmarks(repeat)
    sends = [send_benchmark(20_000 if quick else 50_000) for _ in range(1 if quick else 3)]
    name = "send (evactors.grpc.Server, one streamed message)"
    results[name] = statistics.median(sends)
    print(f"  {results[name]:8.2f} us  {name}", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = run(args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
