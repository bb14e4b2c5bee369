"""What switches hold, as values: entries and the diff (openflow), each switch's sync
state and plans (sync), and entries in ovs-ofctl syntax (ofctl_text)."""
