#!/usr/bin/env bash
# Start Open vSwitch (ovsdb-server + userspace-capable ovs-vswitchd) without systemd,
# if it is not already running. Idempotent.
set -euo pipefail
# ovs-vswitchd counts as running when it answers (a process that is still exiting
# after a kill would match pgrep, and the bridges would then wait for nobody)
vswitchd_up() { ovs-appctl -t ovs-vswitchd --timeout=2 version >/dev/null 2>&1; }
if ovs-vsctl --timeout=2 show >/dev/null 2>&1 && vswitchd_up; then
    exit 0
fi
mkdir -p /var/run/openvswitch /var/log/openvswitch
if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
    /usr/share/openvswitch/scripts/ovs-ctl --no-ovs-vswitchd --system-id=random start >/dev/null
fi
if ! vswitchd_up; then
    for _ in $(seq 50); do  # a killed one may still be on its way out
        pgrep -x ovs-vswitchd >/dev/null || break
        sleep 0.1
    done
    ovs-vswitchd --pidfile --detach --log-file >/dev/null 2>&1
fi
for _ in $(seq 50); do
    ovs-vsctl --timeout=2 show >/dev/null 2>&1 && vswitchd_up && exit 0
    sleep 0.1
done
echo "ovs-start: Open vSwitch did not come up (see /var/log/openvswitch/)" >&2
exit 1
