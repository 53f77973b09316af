"""evactors: `nerdctl events`, `info` and `system prune` for gRPC clients of containerd.

Layout (see ARCHITECTURE.md for the map):

- `evactors.grpc`: the gRPC transport (purerpc's protocol layer driven by trio);
- `evactors.containerd`: the containerd adapter (its API over a unix socket, typed
  errors, event payload decoding and `ctr`-style JSON);
- `evactors.testing`: a private containerd and a busybox image for tests and demos;
- `evactors._generated`: protobuf modules generated from proto/ (do not edit).
"""

from ._version import __version__

__all__ = ["__version__"]
