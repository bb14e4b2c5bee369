"""The management plane: the gRPC server, token auth and audit, the event bus behind
``WatchEvents``, and the Prometheus metrics."""
