#!/bin/bash
# Build (and cache under build/xen/) everything `make check-xen` boots: the Xen 4.17
# hypervisor ELF, a Debian 12 dom0 rootfs (debootstrap) with xen-blkbackd installed by
# `make install DESTDIR=<rootfs> PREFIX=/usr`, a busybox dom0 initramfs, the ext4 dom0
# disk image, and the PV guest kernel (vmlinux ELF) + busybox/fio initramfs.
# Only Debian packages from the host's apt mirror are used. Idempotent: every stage has
# a stamp and is redone only when its inputs change.
#
# Usage: tests/xen/build-images.sh [--dist=bookworm|trixie] [--no-daemon] [--rebuild-rootfs]
#   --dist=trixie  Debian 13 dom0 with Xen 4.20 (backendtype=tap -> backend/vbd3), cached
#                  in build/xen-trixie; the PV guest kernel/initramfs are the bookworm ones
#                  (built first in build/xen when missing)
#   XEN_DIR   cache directory (default build/xen, build/xen-trixie for --dist=trixie)
#   MIRROR    Debian mirror (default: the deb.debian.org one in the host's apt sources)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SEC_MIRROR=${SEC_MIRROR:-http://deb.debian.org/debian-security}
DIST=bookworm
WITH_DAEMON=1 REBUILD=0
for a in "$@"; do
    case $a in
        --dist=*) DIST=${a#*=} ;;
        --no-daemon) WITH_DAEMON=0 ;;
        --rebuild-rootfs) REBUILD=1 ;;
        *) echo "usage: $0 [--dist=bookworm|trixie] [--no-daemon] [--rebuild-rootfs]" >&2; exit 2 ;;
    esac
done
SUITE=$DIST
case $DIST in
    bookworm)
        XEN_DIR=${XEN_DIR:-$ROOT/build/xen}; XENV=4.17
        # qemu-system-xen gives the qdisk backend for the comparison table,
        # qemu-system-common + qemu-utils qemu-storage-daemon and qemu-img for qcow2; the lib*
        # packages are the daemon's run-time libraries.
        DOM0_PKGS="linux-image-amd64 xen-utils-4.17 xen-utils-common xenstore-utils kmod udev
  util-linux e2fsprogs procps iproute2 busybox-static fio qemu-system-xen dmsetup
  qemu-system-common qemu-utils
  liburing2 libaio1 libinih1 libjson-c5 libxenstore4 libxengnttab1 libxenevtchn1
  libsystemd0 libnbd0 librbd1 librados2 libmicrohttpd12 libseccomp2" ;;
    trixie)
        XEN_DIR=${XEN_DIR:-$ROOT/build/xen-trixie}; XENV=4.20
        # The hypervisor comes from the chroot's apt (the host is bookworm).
        DOM0_PKGS="linux-image-amd64 xen-utils-4.20 xen-utils-common xenstore-utils kmod udev
  util-linux e2fsprogs procps iproute2 busybox-static dmsetup
  liburing2 libaio1t64 libinih1 libjson-c5 libxenstore4 libxengnttab1 libxenevtchn1
  libsystemd0 libnbd0 librbd1 librados2 libmicrohttpd12t64 libseccomp2" ;;
    *) echo "build-images: --dist=bookworm|trixie" >&2; exit 2 ;;
esac
[ $REBUILD = 1 ] && rm -f "$XEN_DIR/stamp.rootfs"
ROOTFS=$XEN_DIR/rootfs

log() { echo "[build-images $(date +%T)] $*"; }
t_start=$(date +%s)
mkdir -p "$XEN_DIR"
cd "$XEN_DIR"

# ---------------------------------------------------------------- hypervisor
# bookworm: the host's apt (same suites); trixie: apt inside the trixie chroot.
stage_xen() {
    local pkg=xen-hypervisor-$XENV-amd64
    [ -s xen-$XENV-amd64 ] && [ -f stamp.xen ] && return 0
    log "downloading $pkg"
    mkdir -p debs && rm -f debs/${pkg}_*.deb
    if [ "$DIST" = bookworm ]; then
        (cd debs && apt-get download -q $pkg)
    else
        chroot_mounts_up
        chroot "$ROOTFS" bash -c "apt-get update -q > /dev/null && cd /tmp && apt-get download -q $pkg" > xen-dl.log 2>&1 ||
            { chroot_mounts_down; tail -20 xen-dl.log; exit 1; }
        chroot_mounts_down
        mv "$ROOTFS"/tmp/${pkg}_*.deb debs/
        rm -rf "$ROOTFS"/var/lib/apt/lists/*
    fi
    rm -rf xen-x && mkdir xen-x && dpkg -x debs/${pkg}_*.deb xen-x
    gunzip -c xen-x/boot/xen-$XENV-amd64.gz > xen-$XENV-amd64.tmp 2>/dev/null ||
        cp xen-x/boot/xen-$XENV-amd64 xen-$XENV-amd64.tmp
    mv xen-$XENV-amd64.tmp xen-$XENV-amd64
    dpkg-deb -f debs/${pkg}_*.deb Version > xen.version
    rm -rf xen-x
    touch stamp.xen
    log "hypervisor $(cat xen.version)"
}

# ---------------------------------------------------------------- dom0 rootfs
chroot_mounts_up() {
    mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
    mountpoint -q "$ROOTFS/sys" || mount -t sysfs sysfs "$ROOTFS/sys"
    mountpoint -q "$ROOTFS/dev" || mount --bind /dev "$ROOTFS/dev"
}
chroot_mounts_down() {
    for m in dev sys proc; do
        mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -l "$ROOTFS/$m" || true
    done
}

stage_rootfs() {
    local want; want=$(echo "$DOM0_PKGS" | tr -s ' \n' ' ' | md5sum | cut -c1-12)
    [ -f stamp.rootfs ] && [ "$(cat stamp.rootfs)" = "$want" ] && return 0
    trap chroot_mounts_down EXIT
    chroot_mounts_down
    rm -rf "$ROOTFS" rootfs.partial
    log "debootstrap $SUITE (minbase) from $MIRROR"
    debootstrap --variant=minbase "$SUITE" rootfs.partial "$MIRROR" > debootstrap.log 2>&1 ||
        { tail -20 debootstrap.log; exit 1; }
    mv rootfs.partial "$ROOTFS"
    [ "$DIST" = bookworm ] || rm -f stamp.xen
    # Same suites as the host (bookworm, -updates, -security) so xl matches the hypervisor.
    cat > "$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SEC_MIRROR $SUITE-security main
EOF
    printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
    chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
    # No initramfs-tools run for the kernel package: we boot our own busybox initramfs.
    mkdir -p "$ROOTFS/etc/initramfs-tools"
    chroot_mounts_up
    log "apt-get dist-upgrade + install dom0 packages"
    chroot "$ROOTFS" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C bash -c "
        apt-get update -q && apt-get -y -q dist-upgrade &&
        apt-get -y -q install --no-install-recommends $(echo $DOM0_PKGS)" > apt.log 2>&1 ||
        { tail -30 apt.log; exit 1; }
    chroot "$ROOTFS" apt-get clean
    chroot_mounts_down
    trap - EXIT
    rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* \
           "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/boot/initrd.img-*
    echo "$want" > stamp.rootfs.pending
}

check_skew() {   # after stage_xen: hypervisor and dom0 tools must be the same build
    [ -f stamp.rootfs.pending ] || return 0
    local hv tools want
    hv=$(cat xen.version)
    tools=$(chroot "$ROOTFS" dpkg-query -W -f='${Version}' xen-utils-$XENV)
    log "hypervisor $hv, dom0 xen-utils $tools"
    if [ "$hv" != "$tools" ]; then
        echo "build-images: version skew: hypervisor $hv vs xen-utils $tools" >&2
        exit 1
    fi
    mv stamp.rootfs.pending stamp.rootfs
    rm -f stamp.initrd stamp.guest
}

kver() { ls "$ROOTFS/lib/modules" | sort -V | tail -1; }

# Print the module files (relative to lib/modules/<kver>) for the given modules and their
# dependencies, dependencies first.
mod_closure() {
    local kv=$1; shift
    local seen="" out=""
    visit() {   # module (a trailing ? makes it optional)
        local m=${1%\?} f deps d
        case " $seen " in *" $m "*) return ;; esac
        seen="$seen $m"
        if ! f=$(chroot "$ROOTFS" modinfo -k "$kv" -F filename "$m" 2>/dev/null); then
            [ "$m" != "$1" ] && return 0
            echo "build-images: no module $m in $kv" >&2; return 1
        fi
        case $f in /*) ;; *) return 0 ;; esac   # (builtin)
        deps=$(chroot "$ROOTFS" modinfo -k "$kv" -F depends "$m" | tr ',' ' ')
        for d in $deps; do visit "$d" || return 1; done
        out="$out $f"
    }
    for m in "$@"; do visit "$m" || return 1; done
    echo $out
}

# Libraries fio links but never uses in the guest (rbd, gluster, nbd, rdma, pmem engines):
# they drag in ~60 MB (ceph, icu, boost). fio is linked BIND_NOW, so each is replaced by
# a stub with the same SONAME, version nodes and symbols (abort() if ever called).
STUB_LIBS="libgfapi.so.0 libnbd.so.0 libibverbs.so.1 librdmacm.so.1 librados.so.2 librbd.so.1
  libpmemblk.so.1 libpmem.so.1"

findlib() {   # soname -> path inside the rootfs
    local d
    for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib64 /usr/lib; do
        [ -e "$ROOTFS$d/$1" ] && { echo "$d/$1"; return 0; }
    done
    return 1
}

make_stub() {   # dst prog soname: build a stub of soname for the symbols prog imports from it
    local dst=$1 prog=$2 so=$3 real w=$XEN_DIR/stub.d sym ver
    real=$(findlib "$so") || { echo "build-images: $so not found" >&2; return 1; }
    rm -rf "$w"; mkdir -p "$w"
    nm -D --defined-only "$ROOTFS$real" | awk '{print $3}' | sed 's/@.*//' | sort -u > "$w/defs"
    nm -D --undefined-only "$ROOTFS$prog" | awk '{print $2}' | while IFS=@ read -r sym ver; do
        if grep -qx "$sym" "$w/defs"; then echo "$sym ${ver:--}"; fi
    done > "$w/syms"
    awk '{print "void " $1 "(void) { __builtin_trap(); }"}' "$w/syms" > "$w/stub.c"
    if awk '$2 != "-"' "$w/syms" | grep -q .; then
        awk '{v[$2] = v[$2] " " $1 ";"} END {for (k in v) print k " { global:" v[k] " };"}' "$w/syms" > "$w/vs"
        gcc -shared -fPIC -nostdlib -o "$w/$so" -Wl,-soname,"$so" -Wl,--version-script="$w/vs" "$w/stub.c"
    else
        gcc -shared -fPIC -nostdlib -o "$w/$so" -Wl,-soname,"$so" "$w/stub.c"
    fi
    mkdir -p "$dst$(dirname "$real")"
    cp "$w/$so" "$dst$real"
    rm -rf "$w"
}

# Copy a dynamically linked program from the rootfs with its library closure (from the
# NEEDED entries), leaving out the stubbed libraries and what only they need.
copy_prog() {
    local dst=$1 prog=$2 todo so p
    mkdir -p "$dst$(dirname "$prog")"
    cp -L "$ROOTFS$prog" "$dst$prog"
    todo=$(readelf -d "$ROOTFS$prog" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p')
    while [ -n "$todo" ]; do
        set -- $todo; so=$1; shift; todo="$*"
        case " $(echo $STUB_LIBS) " in *" $so "*) continue ;; esac
        p=$(findlib "$so") || { echo "build-images: $so (for $prog) not found" >&2; return 1; }
        [ -e "$dst$p" ] && continue
        mkdir -p "$dst$(dirname "$p")"
        cp -L "$ROOTFS$p" "$dst$p"
        todo="$todo $(readelf -d "$ROOTFS$p" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p')"
    done
}

add_modules() {   # dst kver modules...
    local dst=$1 kv=$2; shift 2
    local f
    mkdir -p "$dst/lib/modules"
    : > "$dst/lib/modules/load-order"
    local list; list=$(mod_closure "$kv" "$@") || exit 1
    for f in $list; do
        case $f in
            *.ko.xz) xz -dc "$ROOTFS$f" > "$dst/lib/modules/$(basename "$f" .xz)" ;;
            *.ko.zst) zstd -qdc "$ROOTFS$f" > "$dst/lib/modules/$(basename "$f" .zst)" ;;
            *) cp "$ROOTFS$f" "$dst/lib/modules/" ;;
        esac
        basename "${f%.xz}" | sed 's/\.zst$//' >> "$dst/lib/modules/load-order"
    done
}

busybox_tree() {   # dst: static busybox + applet links (never a link named busybox)
    local dst=$1 a
    mkdir -p "$dst"/{bin,sbin,dev,proc,sys,tmp,mnt,newroot,etc,run}
    cp "$ROOTFS/bin/busybox" "$dst/bin/busybox"
    for a in $("$dst/bin/busybox" --list); do
        [ "$a" = busybox ] && continue
        [ -e "$dst/bin/$a" ] || ln -s busybox "$dst/bin/$a"
    done
}

mk_cpio() { (cd "$1" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$2"; }

# ---------------------------------------------------------------- dom0 initramfs
stage_initrd() {
    [ -f stamp.initrd ] && [ -s dom0-initrd.img ] && [ -s vmlinuz ] && return 0
    local kv d; kv=$(kver)
    d=$XEN_DIR/initrd.d
    rm -rf "$d"; busybox_tree "$d"
    add_modules "$d" "$kv" virtio_pci virtio_blk crc32c_generic? ext4
    cat > "$d/init" <<'EOF'
#!/bin/busybox sh
# dom0 initramfs: load virtio + ext4, mount /dev/vda and switch_root to its init=.
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for pass in 1 2; do for m in $(cat /lib/modules/load-order); do
    n=$(echo ${m%.ko} | tr - _); grep -q "^$n " /proc/modules || insmod /lib/modules/$m 2>/dev/null
done; done
init=/sbin/init
for a in $(cat /proc/cmdline); do case $a in init=*) init=${a#init=} ;; esac; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; sh; }
umount /proc /sys; mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot "$init"
EOF
    chmod 755 "$d/init"
    mk_cpio "$d" dom0-initrd.img
    cp "$ROOTFS/boot/vmlinuz-$kv" vmlinuz
    echo "$kv" > kernel.version
    touch stamp.initrd
    log "dom0 initramfs for $kv: $(du -h dom0-initrd.img | cut -f1)"
}

# ---------------------------------------------------------------- guest kernel + initramfs
extract_vmlinux() {   # vmlinuz -> vmlinux ELF (the payload is xz in Debian kernels)
    local off
    off=$(grep -abo $'\xfd7zXZ\x00' "$1" | head -1 | cut -d: -f1)
    [ -n "$off" ] || { echo "build-images: no xz payload in $1" >&2; return 1; }
    tail -c +$((off + 1)) "$1" | xz -dc 2>/dev/null > "$2.tmp" || true
    head -c 4 "$2.tmp" | grep -q 'ELF' || { echo "build-images: vmlinux extraction failed" >&2; return 1; }
    mv "$2.tmp" "$2"
}

# The guest's programs besides busybox (part of stamp.guest)
GUEST_PROGS="/usr/bin/fio /sbin/mkfs.ext4 /sbin/e2fsck /sbin/resize2fs /sbin/blkdiscard /sbin/blockdev"
stage_guest() {
    local inputs; inputs=$( (cat "$ROOTFS/../stamp.rootfs" "$ROOT/tests/xen/guest-init.sh"; echo "$GUEST_PROGS") | md5sum | cut -c1-12)
    [ -f stamp.guest ] && [ "$(cat stamp.guest)" = "$inputs" ] && return 0
    local kv d p; kv=$(kver)
    [ -s guest-vmlinux ] && [ -f stamp.guest ] || extract_vmlinux "$ROOTFS/boot/vmlinuz-$kv" guest-vmlinux
    d=$XEN_DIR/guest.d
    rm -rf "$d"; busybox_tree "$d"
    add_modules "$d" "$kv" xen-blkfront crc32c_generic ext4
    for p in $GUEST_PROGS; do
        copy_prog "$d" "$p" || exit 1
    done
    for p in $STUB_LIBS; do make_stub "$d" /usr/bin/fio "$p"; done
    mkdir -p "$d/lib64" && cp -L "$ROOTFS/lib64/ld-linux-x86-64.so.2" "$d/lib64/"
    chroot "$d" /usr/bin/fio --version > /dev/null ||
        { echo "build-images: fio does not run in the guest tree" >&2; exit 1; }
    cp "$ROOT/tests/xen/guest-init.sh" "$d/init"; chmod 755 "$d/init"
    mk_cpio "$d" guest-initrd.img
    echo "$inputs" > stamp.guest
    log "guest vmlinux $(du -h guest-vmlinux | cut -f1), initramfs $(du -h guest-initrd.img | cut -f1)"
}

# ---------------------------------------------------------------- dom0 disk image
# Files we add to the pristine rootfs are listed in overlay.list and removed before the
# next image, so a stale daemon never survives a rebuild.
stage_dom0img() {
    local stage=$XEN_DIR/stage f
    if [ -f overlay.list ]; then
        while read -r f; do rm -f "$ROOTFS$f"; done < overlay.list
    fi
    rm -rf "$stage"; mkdir -p "$stage"
    if [ "$WITH_DAEMON" = 1 ]; then
        log "make install DESTDIR=$stage PREFIX=/usr"
        if make -C "$ROOT" -s install DESTDIR="$stage" PREFIX=/usr > install.log 2>&1; then
            echo yes > daemon.installed
        elif [ -x "$ROOT/build/xen-blkbackd" ] &&
             make -C "$ROOT" -s -o all install DESTDIR="$stage" PREFIX=/usr >> install.log 2>&1; then
            # The tree does not build right now (others are editing it): install the
            # last good build/ binaries rather than testing nothing.
            log "make install failed to build; installed the existing build/ binaries (see $XEN_DIR/install.log)"
            echo "yes (existing build/, tree did not build)" > daemon.installed
        else
            log "make install failed (daemon not installed; see $XEN_DIR/install.log)"
            rm -rf "$stage"; mkdir -p "$stage"
            echo no > daemon.installed
        fi
    else
        echo no > daemon.installed
    fi
    # Configuration files even when the daemon did not build (the kernel baseline needs none).
    if [ ! -e "$stage/etc/modprobe.d" ] && [ -x "$ROOT/conf/install-extra.sh" ]; then
        DESTDIR="$stage" PREFIX=/usr SYSCONFDIR=/etc "$ROOT/conf/install-extra.sh" >> install.log 2>&1 || true
    fi
    # Debian 13's libaio1t64 renamed the soname to libaio.so.1t64 (the t64 transition; the
    # amd64 ABI is unchanged): a daemon built on Debian 12 looks for libaio.so.1.
    local mad=usr/lib/x86_64-linux-gnu
    if [ "$DIST" != bookworm ] && [ ! -e "$ROOTFS/$mad/libaio.so.1" ] && [ -e "$ROOTFS/$mad/libaio.so.1t64" ]; then
        mkdir -p "$stage/$mad"; ln -s libaio.so.1t64 "$stage/$mad/libaio.so.1"
    fi
    mkdir -p "$stage/opt/xentest"
    cp "$ROOT"/tests/xen/dom0-init.sh "$ROOT"/tests/xen/scenarios.sh "$stage/opt/xentest/"
    chmod 755 "$stage"/opt/xentest/*.sh
    cp guest-vmlinux guest-initrd.img "$stage/opt/xentest/"
    (cd "$stage" && find . ! -type d | sed 's/^\.//') > overlay.list
    (cd "$stage" && tar cf - .) | (cd "$ROOTFS" && tar xf - --keep-directory-symlink)
    chroot "$ROOTFS" ldconfig
    if [ -x "$ROOTFS/usr/sbin/xen-blkbackd" ] && ! chroot "$ROOTFS" /usr/sbin/xen-blkbackd --version > /dev/null 2>&1; then
        echo "build-images: xen-blkbackd does not run in the $DIST dom0:" >&2
        chroot "$ROOTFS" /usr/sbin/xen-blkbackd --version >&2 || true
        exit 1
    fi
    local sum; sum=$( (cd "$stage" && find . -type f -print0 | sort -z | xargs -0 md5sum) | md5sum | cut -c1-12)
    sum="$sum-$(cat stamp.rootfs)"
    if [ -f stamp.dom0img ] && [ "$(cat stamp.dom0img)" = "$sum" ] && [ -s dom0.img ]; then
        return 0
    fi
    log "mkfs.ext4 -d rootfs dom0.img"
    rm -f dom0.img.tmp
    mkfs.ext4 -q -F -L dom0 -d "$ROOTFS" dom0.img.tmp 3G
    mv dom0.img.tmp dom0.img
    echo "$sum" > stamp.dom0img
}

# trixie: the PV guest (kernel 6.1 blkfront + busybox/fio initramfs) is the bookworm one.
stage_guest_copy() {
    local b=$ROOT/build/xen
    if [ ! -s "$b/guest-initrd.img" ] || [ ! -f "$b/stamp.guest" ]; then
        log "building the bookworm images first (the guest comes from there)"
        XEN_DIR=$b "$ROOT/tests/xen/build-images.sh" --dist=bookworm --no-daemon
    fi
    cp "$b/guest-vmlinux" "$b/guest-initrd.img" .
    touch stamp.guest
}

if [ "$DIST" = bookworm ]; then
    stage_xen; stage_rootfs; check_skew; stage_initrd; stage_guest
else
    stage_rootfs; stage_xen; check_skew; stage_initrd; stage_guest_copy
fi
stage_dom0img
log "done in $(( $(date +%s) - t_start )) s (daemon installed: $(cat daemon.installed))"
