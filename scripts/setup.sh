#!/usr/bin/env bash
# Idempotent set-up of everything aifabric needs on a Debian 12 machine:
# Debian packages, a virtualenv at .venv that sees Debian's Mininet, the project
# installed editable with its dev dependencies, and a running Open vSwitch.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(openvswitch-switch mininet iperf3 ethtool iputils-ping iproute2 python3-venv python3-dev openssl librsvg2-bin tcpdump iptables openmpi-bin python3-mpi4py etcd-server etcd-client prometheus)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "setup: must run as root (Mininet and Open vSwitch need it), or have sudo" >&2; exit 1
    fi
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's Mininet is installed for /usr/bin/python3 only: the venv must be made from it.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mininet.net' 2>/dev/null; then
    echo "setup: creating .venv (system site packages, for Mininet)"
    rm -rf .venv
    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install -q --upgrade pip
fi

stamp=.venv/.aifabric-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c 'import controller, aifabric.v1' 2>/dev/null; then
    echo "setup: installing aifabric and its dependencies into .venv"
    if ! .venv/bin/pip install -q -e '.[dev]' > .venv/pip-install.log 2>&1; then
        cat .venv/pip-install.log >&2
        echo "setup: pip install failed (log above, also in .venv/pip-install.log)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi

$SUDO bash scripts/ovs-start.sh
echo "setup: ready"
