#!/bin/sh
# Storage driver domain PID 1 for check-xen phase driverdom (tests/xen/scenarios.sh).
# The domain boots the PV guest kernel and initramfs with xt.role=dd; guest-init.sh
# mounts its root disk (a copy of the dom0 image, /dev/xvda, served by dom0's qdisk) and
# switch_roots here. We bring up what a driver domain runs (xenfs, the evtchn and gntdev
# devices, xenstore through /dev/xen/xenbus), start xen-blkbackd (--domid=auto finds our
# domid) and `xl devd` (runs the hotplug scripts of our backend devices), then serve
# dom0's commands:
#   dom0 writes    /local/domain/<us>/data/xt-cmd = "<id> <shell command>"
#   we answer with /local/domain/<us>/data/xt-out = last 1900 bytes of its output
#                  (oxenstored's quota-maxsize for a domU's value is 2048),
#                  /local/domain/<us>/data/xt-res = "<id> <exit status>"   (out first)
# Values are raw (xenstore-read/write -R: newlines and backslashes as they are). The three
# nodes are created by us first, so they stay ours (dom0 only overwrites them: a node dom0
# created would be dom0's and unreadable here).
# Commands are shell functions below (dstart, dstop, dres, dcheck, mkimg, token, md5at)
# or any shell line. "@@DD ..." lines go to our console (dom0: guest-storage-dd.log).
XENBIN=$(ls -d /usr/lib/xen-4.*/bin 2>/dev/null | sort -V | tail -1)
export PATH=$XENBIN:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C
mountpoint -q /dev || mount -t devtmpfs dev /dev
exec < /dev/console > /dev/console 2>&1
say() { echo "@@DD $*"; }
DLOG=/var/log/xen-blkbackd.log
PIDF=/run/xen-blkbackd.pid
IMG=/img

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run; mount -t tmpfs tmp /tmp
mount -o remount,rw /
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
hostname storage-dd
mkdir -p /run/lock /run/xen /var/run/xen /var/lib/xen /var/log/xen $IMG
for m in xen-evtchn xen-gntdev xen-gntalloc xenfs loop; do
    modprobe $m || say "modprobe $m failed"
done
mountpoint -q /proc/xen || mount -t xenfs xenfs /proc/xen
ME=$(xenstore-read domid 2>/dev/null)
say "up: domid=${ME:-?} kernel=$(uname -r) caps=$(cat /proc/xen/capabilities 2>/dev/null)" \
    "xenbus=$(ls /dev/xen 2>/dev/null | tr '\n' ' ')"

# xt.dargs=A+B (run.sh --daemon-args, relayed by scenarios.sh start_dd): options of every daemon
DARGS=$(sed -n 's/.*xt\.dargs=\([^ ]*\).*/\1/p' /proc/cmdline | tr '+' ' ')
dalive() { [ -f $PIDF ] && kill -0 "$(cat $PIDF)" 2>/dev/null; }
dstart() {   # [daemon args]: start xen-blkbackd, wait (60 s) for its pidfile
    dalive && { echo "already running, pid $(cat $PIDF)"; return 0; }
    /usr/sbin/xen-blkbackd --log=file:$DLOG --pidfile=$PIDF $DARGS "$@" > /tmp/xen-blkbackd.out 2>&1 &
    i=0
    while [ $i -lt 300 ]; do
        dalive && { echo "xen-blkbackd running, pid $(cat $PIDF)"; return 0; }
        kill -0 $! 2>/dev/null || break
        sleep 0.2; i=$((i+1))
    done
    echo "xen-blkbackd did not start:"; tail -15 /tmp/xen-blkbackd.out $DLOG 2>/dev/null
    return 1
}
dstop() {    # SIG: signal the daemon, wait (120 s) until it is gone
    pid=$(cat $PIDF 2>/dev/null) || { echo "no pidfile"; return 1; }
    kill -$1 "$pid" 2>/dev/null
    i=0; while [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null && [ $i -lt 1200 ]; do
        sleep 0.1; i=$((i+1)); done
    [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null &&
        { echo "pid $pid still there after 120 s"; return 1; }
    wait "$pid" 2>/dev/null; rm -f $PIDF
    echo "SIG$1: pid $pid gone after $((i * 100)) ms"
}
dres() {     # the daemon's fds, threads, gntdev VMAs, grants mapped (as scenarios.sh daemon_res)
    pid=$(cat $PIDF 2>/dev/null) || { echo "no pid"; return 1; }
    gm=$(xen-blkbackctl --json stats 2>/dev/null | grep -oE '"grants_mapped": *[0-9]+' | awk -F: '{s += $2} END {print s + 0}')
    nd=$(xen-blkbackctl --json stats 2>/dev/null | grep -c '"devid"')
    echo "fds=$(ls /proc/$pid/fd | wc -l) threads=$(awk '/^Threads:/ {print $2}' /proc/$pid/status)" \
         "gntdev_maps=$(grep -c gntdev /proc/$pid/maps) grants_mapped=$gm devices=$nd"
}
dcheck() {   # our kernel log and the daemon's log: 0 when clean
    bad=$(dmesg | grep -iE 'segfault|general protection|Oops|BUG:|WARNING:|Call Trace|blocked for more|Bad page map' | head -5)
    crit=$(grep -iE 'leak|\[crit\]|\[alert\]|\[emerg\]|assert|sanitizer' $DLOG 2>/dev/null | head -3)
    dalive || echo "daemon gone; its stderr: $(tail -3 /tmp/xen-blkbackd.out 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
    echo "kernel: $(echo "$bad" | grep -c .) bad lines; daemon: $(grep -c '\[error\]' $DLOG 2>/dev/null) [error]," \
         "$(echo "$crit" | grep -c .) leak/critical lines, alive=$(dalive && echo yes || echo no)${bad:+; first: $(echo "$bad" | head -1 | cut -c1-120)}${crit:+; first: $(echo "$crit" | head -1 | cut -c1-120)}"
    [ -z "$bad" ] && [ -z "$crit" ] && dalive
}
mkimg() {    # path MiB [random MiB]
    rm -f "$1"; truncate -s "${2}M" "$1" || return 1
    [ -n "${3:-}" ] && dd if=/dev/urandom of="$1" bs=1M count="$3" conv=notrunc 2>/dev/null
    return 0
}
token() {    # image case: the restart case's go token at 250 MiB (guest-init.sh st_rst)
    printf 'XT-GO %s \n' "$2" | dd of="$1" bs=4096 seek=$((250 * 256)) conv=notrunc,sync oflag=direct 2>/dev/null
}
md5at() {    # image skip-MiB count-MiB
    dd if="$1" bs=1M skip="$2" count="$3" 2>/dev/null | md5sum | cut -c1-32
}

dstart || say "xen-blkbackd did not start"
xl devd -p /run/xldevd.pid > /tmp/xldevd.out 2>&1 || say "xl devd failed: $(cat /tmp/xldevd.out)"
xenstore-write data/xt-out "" data/xt-res "0 0" data/xt-cmd "0 :" ||
    say "cannot write our data/ nodes"
say "ready: daemon $(dalive && echo running || echo absent), xl devd $(cat /run/xldevd.pid 2>/dev/null || echo absent)"
xenstore-write data/xt-ready 1

last=0
while :; do
    c=$(xenstore-read -R data/xt-cmd 2>/dev/null)
    id=${c%% *}
    if [ -n "$c" ] && [ "$id" != "$last" ]; then
        last=$id
        out=$(eval "${c#* }" 2>&1); rc=$?
        say "cmd $id rc=$rc: ${c#* }"
        xenstore-write -R data/xt-out "$(printf '%s' "$out" | tail -c 1900)"
        xenstore-write data/xt-res "$id $rc"
    fi
    sleep 0.5
done
