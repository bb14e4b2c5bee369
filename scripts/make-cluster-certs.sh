#!/usr/bin/env bash
# Certificates for a secured aifabric cluster (docs/cluster.md): a CA, etcd's server
# certificate for the addresses its clients use, and one client certificate for fabricd
# (every instance may share it, or run this with --client NAME for one each). etcd's
# certificate serves clients and its own gateway (which connects to etcd as a client).
#
#   scripts/make-cluster-certs.sh DIR ADDRESS... [--client NAME]...
#
# ADDRESS: an IP address or a host name etcd is reached at (127.0.0.1 for one machine).
# Existing files in DIR are kept (the CA is made once); keys are mode 0600.
set -euo pipefail
usage() { echo "usage: $0 DIR ADDRESS... [--client NAME]..." >&2; exit 2; }
[ $# -ge 2 ] || usage
dir=$1; shift
sans=(); clients=()
while [ $# -gt 0 ]; do
  case $1 in
    --client) [ $# -ge 2 ] || usage; clients+=("$2"); shift 2 ;;
    -*) usage ;;
    *) if [[ $1 =~ ^[0-9.]+$ || $1 == *:* ]]; then sans+=("IP:$1"); else sans+=("DNS:$1"); fi
       shift ;;
  esac
done
[ ${#sans[@]} -gt 0 ] || usage
[ ${#clients[@]} -gt 0 ] || clients=(fabricd)
mkdir -p "$dir"; cd "$dir"; umask 077
days=825
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=aifabric-cluster-ca" \
    -keyout ca.key -out ca.pem 2>/dev/null
fi
sign() {  # NAME EXTENSIONS
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
san=$(IFS=,; echo "${sans[*]}")
sign etcd-server "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth"
for c in "${clients[@]}"; do
  [[ $c =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "bad client name: $c" >&2; exit 2; }
  sign "$c" "extendedKeyUsage=clientAuth"
done
chmod 644 ca.pem etcd-server.pem "${clients[@]/%/.pem}"
echo "in $dir: ca.pem, etcd-server.pem/.key ($san), ${clients[*]/%/.pem/.key}"
