"""What a store holds, decoded: operator intent kinds shared by all instances (kinds) and
a cluster's mastership of switches (mastership)."""
