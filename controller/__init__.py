"""aifabric, the controller side.

- ``controller.core``: the pure core. It turns events (switches, ports, frames, counters,
  operator commands, the time, always passed in) into desired switch state and effects.
  It imports no os-ken, gRPC, socket or clock; a lint rule (``TID251`` in
  ``pyproject.toml``) keeps it so.
- ``controller.daemon``: ``fabricd``, which wires the core to os-ken (``apps``), the
  gRPC API (``apps.api``) and the metrics endpoint.
- ``controller.cli``: ``fabricctl`` and the API client library.
"""

__version__ = "0.1.0"
