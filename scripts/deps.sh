#!/usr/bin/env bash
# Install the Debian 12 packages the build, the demo and the tests need.
# Idempotent: does nothing when everything is already there.
set -eu
pkgs="build-essential pkg-config libxen-dev liburing-dev libaio-dev libinih-dev libjson-c-dev libssl-dev
      xenstore-utils fio e2fsprogs util-linux bc gnuplot-nox jq
      libsystemd-dev systemd man-db
      libnbd-dev libnbd-bin nbdkit qemu-utils qemu-system-common
      libmicrohttpd-dev prometheus curl libseccomp-dev
      dpkg-dev debhelper lintian
      librbd-dev librados-dev ceph-mon ceph-osd ceph-common"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
