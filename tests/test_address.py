"""Parsing the `unix://` and `tcp://` addresses the command line takes."""

from __future__ import annotations

import pytest

from evactors.grpc import TcpAddress, UnixAddress, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:///run/evactors/evactors.sock", UnixAddress("/run/evactors/evactors.sock")),
        ("unix:relative.sock", UnixAddress("relative.sock")),
        ("/run/containerd/containerd.sock", UnixAddress("/run/containerd/containerd.sock")),
        ("tcp://127.0.0.1:7070", TcpAddress("127.0.0.1", 7070)),
        ("tcp://[::1]:7070", TcpAddress("::1", 7070)),
        ("tcp://localhost:0", TcpAddress("localhost", 0)),
    ],
)
def test_parses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["http://x:1", "tcp://host", "tcp://:80", "tcp://h:99999", "tcp://h:x", "unix://", ""]
)
def test_rejects_naming_the_address(text):
    with pytest.raises(ValueError, match="address") as caught:
        parse_address(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    "address", [UnixAddress("/a/b.sock"), TcpAddress("127.0.0.1", 1), TcpAddress("::1", 2)]
)
def test_round_trips_through_str(address):
    assert parse_address(str(address)) == address
