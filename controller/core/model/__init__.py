"""What the fabric is: switches, ports, links, cables and hosts as discovered
(fabric_model), the roles inferred from the wiring (roles), the cabling plan's check
(cabling) and the load on each port (monitor)."""
