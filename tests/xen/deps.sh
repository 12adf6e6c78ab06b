#!/bin/sh
# Host packages needed by `make check-xen` (tests/xen/build-images.sh and run.sh).
# Usage: tests/xen/deps.sh [--install]   (prints the list; installs with apt-get when asked)
set -e
PKGS="qemu-system-x86 debootstrap busybox-static cpio e2fsprogs xz-utils zstd gzip
      dpkg coreutils util-linux"
if [ "$1" = "--install" ]; then
    missing=""
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "deps.sh: installing:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
    fi
else
    echo $PKGS
fi
