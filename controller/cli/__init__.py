"""``fabricctl`` and the gRPC client library it is built on."""
