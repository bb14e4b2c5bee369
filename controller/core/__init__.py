"""The pure core: fabric model, discovery, hosts, forwarding and QoS decisions, the
OpenFlow plan/diff, traffic engineering, configuration.

Nothing here does I/O on the network or reads the clock: callers pass ``now`` and get
back desired state and effects (packet-outs, events), which the apps send.
"""
