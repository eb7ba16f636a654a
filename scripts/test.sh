#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing and we may
# (root or passwordless sudo); otherwise says exactly what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v mosquitto_pub >/dev/null 2>&1 || need_pkgs+=(mosquitto-clients)
[ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
/usr/bin/python3 -c 'import paho.mqtt' >/dev/null 2>&1 || need_pkgs+=(python3-paho-mqtt)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need_pkgs+=(haproxy)
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
[ -f /usr/include/stdio.h ] || need_pkgs+=(libc6-dev)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      echo "missing Debian packages: ${need_pkgs[*]}" >&2
      echo "install them with: sudo apt-get install -y ${need_pkgs[*]}" >&2
      exit 1
    fi
  fi
  echo "installing: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

[ -d node_modules ] || npm ci
npm run build --silent
node scripts/run-tests.js "$@"
