"""How the fabric is run: discovery by LLDP and flap dampening, the frames the controller
reads and writes, the leaf edge and host identity, drains, the desired flows, groups and
meters of each switch, QoS plans, and the grace period after a restart."""
