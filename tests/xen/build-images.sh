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
#                  (built first in build/xen when missing). The daemon is built there in a
#                  Debian 13 build root (buildroot/: Debian 13's gcc and -dev packages,
#                  objects kept in buildroot/out), not on the host
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
        # qemu-system-xen: the qdisk backend (/usr/libexec/xen-qemu-system-i386) of the
        # baseline phase; qemu-utils: qemu-img and, on Debian 13, qemu-storage-daemon (in
        # qemu-system-common on Debian 12) for the nbd phase; dmsetup + dm-delay for
        # restart; strace: the system call round of make bench-xen (tests/xen/perf.sh).
        # The lib* packages are the run-time libraries of the daemon built from
        # BUILD_PKGS (t64 renames: libaio1t64, libmicrohttpd12t64, libssl3t64);
        # build_daemon_trixie lists the packages of every library the programs load and
        # stage_dom0img fails when one is not installed here.
        DOM0_PKGS="linux-image-amd64 xen-utils-4.20 xen-utils-common xenstore-utils kmod udev
  util-linux e2fsprogs procps iproute2 busybox-static dmsetup qemu-system-xen qemu-utils strace
  liburing2 libaio1t64 libinih1 libjson-c5 libxenstore4 libxengnttab1 libxenevtchn1
  libsystemd0 libnbd0 librbd1 librados2 libmicrohttpd12t64 libseccomp2 libssl3t64"
        # The daemon's build dependencies, installed in the Debian 13 build root: the
        # list of scripts/deps.sh (the -dev names are the same on 12 and 13; the run-time
        # packages behind them are not).
        BUILD_PKGS=$("$ROOT/scripts/deps.sh" --print-build) ;;
    *) echo "build-images: --dist=bookworm|trixie" >&2; exit 2 ;;
esac
[ $REBUILD = 1 ] && rm -f "$XEN_DIR/stamp.rootfs" "$XEN_DIR/stamp.buildroot"
ROOTFS=$XEN_DIR/rootfs
BUILDROOT=$XEN_DIR/buildroot

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
# chroot_mounts_up [dir]: /proc, /sys, /dev, and the shared .deb cache (debs-cache/, so a
# rebuilt root downloads nothing twice) as /var/cache/apt/archives; default dir: ROOTFS.
chroot_mounts_up() {
    local r=${1:-$ROOTFS}
    mountpoint -q "$r/proc" || mount -t proc proc "$r/proc"
    mountpoint -q "$r/sys" || mount -t sysfs sysfs "$r/sys"
    mountpoint -q "$r/dev" || mount --bind /dev "$r/dev"
    mkdir -p "$XEN_DIR/debs-cache" "$r/var/cache/apt/archives"
    mountpoint -q "$r/var/cache/apt/archives" || mount --bind "$XEN_DIR/debs-cache" "$r/var/cache/apt/archives"
}
chroot_mounts_down() {
    local r=${1:-$ROOTFS} m
    for m in var/cache/apt/archives dev sys proc; do
        mountpoint -q "$r/$m" 2>/dev/null && umount -l "$r/$m" || true
    done
}

# make_root dir packages log: debootstrap --variant=minbase $SUITE into dir, then the
# suite's -updates and -security as well (as the host; for bookworm that keeps xl at the
# hypervisor's version), policy-rc.d = 101, dist-upgrade, install packages.
make_root() {
    local r=$1 pkgs=$2 alog=$3
    trap "chroot_mounts_down $r" EXIT
    chroot_mounts_down "$r"
    rm -rf "$r" "$r.partial"
    log "debootstrap $SUITE (minbase) from $MIRROR into $(basename "$r")"
    mkdir -p "$XEN_DIR/debs-cache"
    debootstrap --variant=minbase --cache-dir="$XEN_DIR/debs-cache" "$SUITE" "$r.partial" "$MIRROR" \
        > "$alog.debootstrap" 2>&1 || { tail -20 "$alog.debootstrap"; exit 1; }
    mv "$r.partial" "$r"
    cat > "$r/etc/apt/sources.list" <<EOF2
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SEC_MIRROR $SUITE-security main
EOF2
    printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    # No initramfs-tools run for the kernel package: we boot our own busybox initramfs.
    mkdir -p "$r/etc/initramfs-tools"
    chroot_mounts_up "$r"
    log "apt-get dist-upgrade + install $(basename "$r") packages"
    chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C bash -c "
        apt-get update -q && apt-get -y -q dist-upgrade &&
        apt-get -y -q install --no-install-recommends $(echo $pkgs)" > "$alog" 2>&1 ||
        { tail -30 "$alog"; exit 1; }
    chroot_mounts_down "$r"
    trap - EXIT
    rm -rf "$r"/var/lib/apt/lists/*
}

stage_rootfs() {
    local want; want=$(echo "$DOM0_PKGS" | tr -s ' \n' ' ' | md5sum | cut -c1-12)
    [ -f stamp.rootfs ] && [ "$(cat stamp.rootfs)" = "$want" ] && return 0
    rm -f stamp.rootfs overlay.list
    make_root "$ROOTFS" "$DOM0_PKGS" apt.log
    [ "$DIST" = bookworm ] || rm -f stamp.xen
    rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* \
           "$ROOTFS"/boot/initrd.img-*
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
    kver > guest.kver           # the guest kernel's release (phase driverdom needs it)
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

# ---------------------------------------------------------------- trixie: the daemon built on Debian 13
# A build root beside the dom0 rootfs, so the image carries no compiler: Debian 13's gcc
# and the -dev packages of BUILD_PKGS. The tree is bind-mounted read-only at /src and
# built with O=/out inside the root; /out keeps the objects, so after a source change
# only what changed is recompiled (seconds), and the root itself is made once.
stage_buildroot() {
    local want; want=$(echo "$BUILD_PKGS" | tr -s ' \n' ' ' | md5sum | cut -c1-12)
    [ -f stamp.buildroot ] && [ "$(cat stamp.buildroot)" = "$want" ] && return 0
    rm -f stamp.buildroot
    make_root "$BUILDROOT" "$BUILD_PKGS" build-apt.log
    echo "$want" > stamp.buildroot
}

# in_buildroot 'cmd': sh -c cmd chrooted in the build root, in a private mount namespace
# (its mounts vanish with it): the tree at /src (read-only), /proc, /dev.
in_buildroot() {
    unshare -m --propagation private /bin/sh -c '
        set -e; r=$1; mkdir -p "$r/src"
        mount --bind "$2" "$r/src"; mount -o remount,bind,ro "$r/src"
        mount -t proc proc "$r/proc"; mount --bind /dev "$r/dev"
        exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C /bin/sh -c "$3"' \
        sh "$BUILDROOT" "$ROOT" "$1"
}

# build_daemon_trixie stage: `make all` and `make install DESTDIR=/stage PREFIX=/usr` in
# the build root; xen-blkbackd --version and xen-blkbackctl --help must run there. The
# result goes into stage; runtime.pkgs gets the Debian 13 packages of the libraries the
# installed programs load (stage_dom0img checks that the dom0 image has them).
build_daemon_trixie() {
    local stage=$1 t0; t0=$(date +%s)
    if in_buildroot 'rm -rf /stage && nice -n 10 make -C /src O=/out -j2 -s all &&
            make -C /src O=/out -s install DESTDIR=/stage PREFIX=/usr' > install.log 2>&1; then
        echo yes > daemon.installed
    elif [ -x "$BUILDROOT/out/xen-blkbackd" ] &&
         in_buildroot 'rm -rf /stage && make -C /src O=/out -s -o all install DESTDIR=/stage PREFIX=/usr' >> install.log 2>&1; then
        # The tree does not build right now (others are editing it): install the last
        # good build of buildroot/out rather than testing nothing.
        log "the tree does not build in the build root; installed the last buildroot/out build (see $XEN_DIR/install.log)"
        echo "yes (last buildroot/out build, tree did not build)" > daemon.installed
    else
        log "make install failed in the build root (daemon not installed; see $XEN_DIR/install.log)"
        echo no > daemon.installed; return 0
    fi
    log "daemon built in the Debian 13 build root ($(( $(date +%s) - t0 )) s, make -C /src O=/out)"
    in_buildroot '/stage/usr/sbin/xen-blkbackd --version && /stage/usr/bin/xen-blkbackctl --help > /dev/null' >> install.log 2>&1 ||
        { echo "build-images: the daemon does not run in the build root:" >&2; tail -5 install.log >&2; exit 1; }
    in_buildroot 'for f in /stage/usr/sbin/* /stage/usr/bin/* /stage/usr/libexec/xen-blkbackd/*; do ldd "$f"; done |
        sed -n "s/.* => \(\/[^ ]*\) .*/\1/p" | sort -u | while read -r l; do
            dpkg -S "$(readlink -f "$l")" 2>/dev/null || echo "?: $l"; done | cut -d: -f1 | sort -u' > runtime.pkgs
    (cd "$BUILDROOT/stage" && tar cf - .) | (cd "$stage" && tar xf -)
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
    if [ "$WITH_DAEMON" = 1 ] && [ "$DIST" != bookworm ]; then
        build_daemon_trixie "$stage"
    elif [ "$WITH_DAEMON" = 1 ]; then
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
    mkdir -p "$stage/opt/xentest"
    cp "$ROOT"/tests/xen/dom0-init.sh "$ROOT"/tests/xen/scenarios.sh "$ROOT"/tests/xen/perf.sh "$ROOT"/tests/xen/dd-init.sh "$stage/opt/xentest/"
    chmod 755 "$stage"/opt/xentest/*.sh
    # guest.kver: the guest kernel's release; phase driverdom boots it as the driver
    # domain on this image, so it needs this image's modules of the same release
    cp guest-vmlinux guest-initrd.img guest.kver "$stage/opt/xentest/"
    (cd "$stage" && find . ! -type d | sed 's/^\.//') > overlay.list
    (cd "$stage" && tar cf - .) | (cd "$ROOTFS" && tar xf - --keep-directory-symlink)
    chroot "$ROOTFS" ldconfig
    if [ -x "$ROOTFS/usr/sbin/xen-blkbackd" ] && [ -s runtime.pkgs ] && [ "$DIST" != bookworm ]; then
        local p missing=""
        for p in $(cat runtime.pkgs); do
            chroot "$ROOTFS" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
                missing="$missing $p"
        done
        [ -z "$missing" ] ||
            { echo "build-images: the daemon's libraries come from$missing, not in the $DIST dom0: add to DOM0_PKGS" >&2; exit 1; }
    fi
    if [ -x "$ROOTFS/usr/sbin/xen-blkbackd" ] &&
       ! chroot "$ROOTFS" /bin/sh -c '/usr/sbin/xen-blkbackd --version && /usr/bin/xen-blkbackctl --help' > /dev/null 2>&1; then
        echo "build-images: xen-blkbackd or xen-blkbackctl does not run in the $DIST dom0:" >&2
        chroot "$ROOTFS" /bin/sh -c '/usr/sbin/xen-blkbackd --version; /usr/bin/xen-blkbackctl --help' >&2 || true
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
    local b=$ROOT/build/xen want
    if [ ! -s "$b/guest-initrd.img" ] || [ ! -f "$b/stamp.guest" ]; then
        log "building the bookworm images first (the guest comes from there)"
        XEN_DIR=$b "$ROOT/tests/xen/build-images.sh" --dist=bookworm --no-daemon
    fi
    # stage_guest's inputs: a guest-init.sh changed since then makes the bookworm guest stale
    want=$( (cat "$b/stamp.rootfs" "$ROOT/tests/xen/guest-init.sh"; echo "$GUEST_PROGS") | md5sum | cut -c1-12)
    if [ "$(cat "$b/stamp.guest")" != "$want" ]; then
        log "the bookworm guest is older than tests/xen/guest-init.sh: rebuilding it there"
        XEN_DIR=$b "$ROOT/tests/xen/build-images.sh" --dist=bookworm $([ -f "$b/daemon.installed" ] && [ "$(cat "$b/daemon.installed")" = no ] && echo --no-daemon)
    fi
    [ -s "$b/guest.kver" ] || ls "$b/rootfs/lib/modules" | sort -V | tail -1 > "$b/guest.kver"
    cp "$b/guest-vmlinux" "$b/guest-initrd.img" "$b/guest.kver" .
    touch stamp.guest
}

if [ "$DIST" = bookworm ]; then
    stage_xen; stage_rootfs; check_skew; stage_initrd; stage_guest
else
    stage_rootfs; stage_xen; check_skew; stage_initrd; stage_guest_copy
    [ "$WITH_DAEMON" = 1 ] && stage_buildroot
fi
stage_dom0img
log "done in $(( $(date +%s) - t_start )) s (daemon installed: $(cat daemon.installed))"
