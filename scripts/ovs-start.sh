#!/usr/bin/env bash
# Start Open vSwitch (ovsdb-server + userspace-capable ovs-vswitchd) without systemd,
# if it is not already running. Idempotent.
set -euo pipefail
if ovs-vsctl --timeout=2 show >/dev/null 2>&1 && pgrep -x ovs-vswitchd >/dev/null; then
    exit 0
fi
mkdir -p /var/run/openvswitch /var/log/openvswitch
if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
    /usr/share/openvswitch/scripts/ovs-ctl --no-ovs-vswitchd --system-id=random start >/dev/null
fi
if ! pgrep -x ovs-vswitchd >/dev/null; then
    ovs-vswitchd --pidfile --detach --log-file >/dev/null 2>&1
fi
for _ in $(seq 50); do
    ovs-vsctl --timeout=2 show >/dev/null 2>&1 && pgrep -x ovs-vswitchd >/dev/null && exit 0
    sleep 0.1
done
echo "ovs-start: Open vSwitch did not come up (see /var/log/openvswitch/)" >&2
exit 1
