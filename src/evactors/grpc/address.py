"""Where a gRPC endpoint listens: `unix:///path/to.sock` or `tcp://host:port`."""

from __future__ import annotations

import attrs
import trio


@attrs.frozen
class UnixAddress:
    """A unix socket path."""

    path: str

    def __str__(self) -> str:
        return f"unix://{self.path}"


@attrs.frozen
class TcpAddress:
    """A TCP host and port; the host is bound or dialled exactly as given."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


Address = UnixAddress | TcpAddress


def parse_address(text: str) -> Address:
    """Parse `unix:///abs/path`, `unix:path`, a bare path, or `tcp://host:port`.

    Raises:
      ValueError: the text is none of those; the message quotes it.
    """
    if text.startswith("unix://"):
        path = text.removeprefix("unix://")
    elif text.startswith("unix:"):
        path = text.removeprefix("unix:")
    elif text.startswith("tcp://"):
        return _parse_tcp(text, text.removeprefix("tcp://"))
    elif "://" not in text:
        path = text
    else:
        raise ValueError(f"unsupported address {text!r}: use unix:///path or tcp://host:port")
    if not path:
        raise ValueError(f"address {text!r} names no socket path")
    return UnixAddress(path)


def _parse_tcp(text: str, rest: str) -> TcpAddress:
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"address {text!r} is not tcp://host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return TcpAddress(host, int(port))


async def connect(address: Address) -> trio.abc.Stream:
    """Open a byte stream to the address.

    Raises:
      OSError: the connection could not be made (no such socket, refused, ...).
    """
    if isinstance(address, UnixAddress):
        return await trio.open_unix_socket(address.path)
    return await trio.open_tcp_stream(address.host, address.port)
