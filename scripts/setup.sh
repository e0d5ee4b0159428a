#!/usr/bin/env bash
# Installs the Debian packages kdtrain builds and runs with (needs root or sudo).
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
pkgs="libopenmpi-dev openmpi-bin libopenblas-dev libturbojpeg0-dev libpng-dev pkg-config"
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null | grep -vc "install ok installed" || true)
if [ "$missing" != 0 ] || ! dpkg-query -W $pkgs >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $pkgs
fi
