"""The RPC layer: `evactors.v1.SystemService` on the wire.

This package is the only one that touches evactors' own protobuf messages: requests are
checked and turned into the pipeline's attrs records here (`messages`), and records back
into wire messages. `service.SystemService` answers the calls; `client.open_system_client`
makes them (the command line uses it).
"""

from .client import SystemClient, open_system_client
from .service import SystemService

__all__ = ["SystemClient", "SystemService", "open_system_client"]
