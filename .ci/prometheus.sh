#!/usr/bin/env bash
# Installs Debian's prometheus (with promtool) and prometheus-pushgateway when
# they are missing. Idempotent: does nothing when all three commands exist.
# The packages' own services are not needed (and not started in containers
# without systemd): the tests start their own instances on loopback.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
if [ ${#need[@]} -eq 0 ]; then
    echo "prometheus.sh: prometheus, promtool and prometheus-pushgateway are installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d 101: do not start the packages' services during installation.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
for c in prometheus promtool prometheus-pushgateway; do
    command -v "$c" >/dev/null 2>&1 || { echo "prometheus.sh: $c still missing" >&2; exit 1; }
done
echo "prometheus.sh: installed $(prometheus --version 2>&1 | head -1)"
