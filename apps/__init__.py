"""os-ken apps: thin translators between OpenFlow and the pure core in ``controller``."""
