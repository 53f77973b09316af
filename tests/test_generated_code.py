"""The committed generated modules are exactly what scripts/generate_protos.py makes
from proto/ now: editing a .proto without regenerating fails here."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "src" / "evactors" / "_generated"


def generated_files(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_regenerating_changes_nothing(tmp_path):
    fresh = tmp_path / "generated"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_protos.py"), "--out", str(fresh)],
        check=True,
    )
    assert generated_files(fresh) == generated_files(COMMITTED)
    changed = [
        name
        for name in sorted(generated_files(fresh))
        if not filecmp.cmp(fresh / name, COMMITTED / name, shallow=False)
    ]
    assert changed == [], "run: python scripts/generate_protos.py"


def test_every_proto_has_its_module():
    protos = {
        p.relative_to(ROOT / "proto").with_suffix("") for p in (ROOT / "proto").rglob("*.proto")
    }
    assert protos
    for proto in protos:
        assert (COMMITTED / f"{proto}_pb2.py").is_file(), proto
    assert (COMMITTED / "evactors" / "v1" / "system_service_grpc.py").is_file()


def test_the_wire_contract_has_its_frozen_numbers():
    from evactors._generated.evactors.v1 import system_service_pb2 as api

    numbers = {
        name: {f.name: f.number for f in message.fields}
        for name, message in api.DESCRIPTOR.message_types_by_name.items()
    }
    assert numbers["SystemEvent"] == {
        "timestamp": 1, "container_id": 2, "namespace": 3, "topic": 4, "status": 5,
        "event_data": 6, "type": 7, "metadata": 8, "sequence": 9, "formatted": 10,
    }  # fmt: skip
    assert numbers["GetSystemEventsRequest"] == {
        "filters": 1, "format": 2, "since": 3, "until": 4, "after_sequence": 5,
    }  # fmt: skip
    assert numbers["ServiceStats"]["containerd_connected"] == 7
    assert numbers["GetSystemInfoResponse"]["stats"] == 20
    assert numbers["SystemPruneResponse"]["errors"] == 6
    assert api.EventType.Value("SYSTEM_EVENT") == 9
    methods = {m.name: m for m in api.DESCRIPTOR.services_by_name["SystemService"].methods}
    assert set(methods) == {"GetSystemInfo", "GetSystemEvents", "SystemPrune"}
    assert methods["GetSystemEvents"].server_streaming
