"""The os-ken apps: thin translators between OpenFlow and the pure core in
``controller.core`` (``fabric_app``: discovery, forwarding, TE; ``qos_app``: queues
through OVSDB), the os-ken fixes they need, and the management plane in ``api``."""
