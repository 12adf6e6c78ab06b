#!/usr/bin/env bash
# Install the Debian packages the build, the demo and the tests need (Debian 12; the
# same names hold on Debian 13, where the t64 transition renamed only run-time packages).
# Idempotent: does nothing when everything is already there.
#   --print-build  print the build dependencies of `make all` (the pkg-config and header
#                  checks of the Makefile) and exit; tests/xen/build-images.sh installs
#                  them in its Debian 13 build root
set -eu
build="build-essential pkg-config libxen-dev liburing-dev libaio-dev libinih-dev libjson-c-dev
      libssl-dev libsystemd-dev libnbd-dev libmicrohttpd-dev libseccomp-dev librbd-dev librados-dev"
if [ "${1:-}" = --print-build ]; then
  echo $build
  exit 0
fi
pkgs="$build
      xenstore-utils fio e2fsprogs util-linux bc gnuplot-nox jq
      systemd man-db
      libnbd-bin nbdkit qemu-utils qemu-system-common
      prometheus curl
      dpkg-dev debhelper lintian
      ceph-mon ceph-osd ceph-common"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
