"""Fake OpenFlow 1.3 switches for tests: a switch's state and pipeline (fields, packet,
oftables, pipeline), its agent (switch, view, ofwire), and a fleet of them on real TCP
sessions to a controller, cabled as a fabric (fleet, layout). Independent of the
controller's own code: only os-ken's message parsers are shared."""
