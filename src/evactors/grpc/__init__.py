"""evactors' gRPC transport: purerpc's protocol layer driven by trio.

This package is the only one that imports purerpc. It gives:

- `open_channel` / `Channel`: calls over a unix or TCP connection (the containerd
  adapter uses it to talk to containerd);
- `Server`: answers calls to generated purerpc servicers on unix and TCP sockets;
- `GrpcError` / `StatusCode`: how a call's status travels as a Python exception;
- `parse_address`: the `unix:///path` and `tcp://host:port` forms the CLI takes.
"""

from ._status import GrpcError, StatusCode
from .address import Address, TcpAddress, UnixAddress, parse_address
from .client import Channel, ResponseStream, open_channel
from .server import Server, ServerStatistics

__all__ = [
    "Address",
    "Channel",
    "GrpcError",
    "ResponseStream",
    "Server",
    "ServerStatistics",
    "StatusCode",
    "TcpAddress",
    "UnixAddress",
    "open_channel",
    "parse_address",
]
