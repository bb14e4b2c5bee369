"""aifabric pure core: fabric model, discovery, forwarding decisions, configuration.

Nothing in this package imports os-ken or opens a socket (except ``daemon`` and
``fabricctl``, the entry points); time is always passed in as an argument.
"""

__version__ = "0.1.0"
