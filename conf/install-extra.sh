#!/bin/sh
# Install the Xen integration files of xen-blkbackd (called by `make install`):
#   $SYSCONFDIR/xen/scripts/block-xen-blkbackd   libxl hotplug script (script=block-xen-blkbackd)
#   /etc/modprobe.d/xen-blkbackd.conf            keeps the kernel's xen-blkback away
#   /lib/systemd/system/xen-blkbackd.service     systemd unit
#   /lib/udev/rules.d/60-xen-blkbackd.rules      /dev/xen/gntdev, evtchn to group xen-blkbackd
#   /usr/lib/sysusers.d/xen-blkbackd.conf        the user xen-blkbackd (systemd-sysusers)
# Environment: DESTDIR (default empty), PREFIX (default /usr/local), SYSCONFDIR (default /etc).
set -e
here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
SBINDIR=${SBINDIR:-$PREFIX/sbin}

install -d "$DESTDIR$SYSCONFDIR/xen/scripts" "$DESTDIR/etc/modprobe.d" "$DESTDIR/lib/systemd/system" \
    "$DESTDIR/lib/udev/rules.d" "$DESTDIR/usr/lib/sysusers.d"
install -m 644 "$here/60-xen-blkbackd.rules" "$DESTDIR/lib/udev/rules.d/60-xen-blkbackd.rules"
install -m 644 "$here/xen-blkbackd.sysusers" "$DESTDIR/usr/lib/sysusers.d/xen-blkbackd.conf"
install -m 755 "$here/block-xen-blkbackd" "$DESTDIR$SYSCONFDIR/xen/scripts/block-xen-blkbackd"
install -m 644 "$here/modprobe-xen-blkbackd.conf" "$DESTDIR/etc/modprobe.d/xen-blkbackd.conf"
sed "s|@SBINDIR@|$SBINDIR|g" "$here/xen-blkbackd.service" > "$DESTDIR/lib/systemd/system/xen-blkbackd.service.tmp"
chmod 644 "$DESTDIR/lib/systemd/system/xen-blkbackd.service.tmp"
mv "$DESTDIR/lib/systemd/system/xen-blkbackd.service.tmp" "$DESTDIR/lib/systemd/system/xen-blkbackd.service"
