#!/bin/sh
# dom0 PID 1 for `make check-xen`: bring up the Xen control plane without systemd
# (oxenstored, xen-init-dom0, xenconsoled), run tests/xen/scenarios.sh with the plan
# from the kernel command line (xt.plan=...), print "@@XT ..." lines on hvc0 (Xen relays
# them to the serial port the host reads) and power off. Never exits: PID 1 must not.
XENBIN=$(ls -d /usr/lib/xen-4.*/bin 2>/dev/null | sort -V | tail -1)
export PATH=$XENBIN:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C
exec < /dev/console > /dev/console 2>&1
say() { echo "@@XT $*"; }

boot() {
    mountpoint -q /proc || mount -t proc proc /proc
    mountpoint -q /sys || mount -t sysfs sysfs /sys
    mountpoint -q /dev || mount -t devtmpfs dev /dev
    mkdir -p /dev/pts /dev/shm
    mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
    mount -t tmpfs run /run; mount -t tmpfs tmp /tmp
    mount -o remount,rw /
    # devtmpfs lacks these; Xen's hotplug locking.sh spins on `stat /dev/stdin` without them
    ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
    ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
    hostname dom0
    mkdir -p /run/lock /run/xenstored /run/xen /var/run/xen /var/lib/xen /var/log/xen/console
    [ -e /var/lock ] || mkdir -p /var/lock
    for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs loop; do
        modprobe $m || say INFO "modprobe $m failed"
    done
    mountpoint -q /proc/xen || mount -t xenfs xenfs /proc/xen
    grep -q control_d /proc/xen/capabilities || { say FATAL "not running as Xen dom0"; return 1; }
    # Debian 12 ships oxenstored in xen-utils; later releases may have only the C xenstored
    xsd=oxenstored; command -v $xsd > /dev/null || xsd=xenstored
    XENSTORED_ROOTDIR=/run/xenstored $xsd --pid-file /run/xenstored.pid ||
        { say FATAL "$xsd failed"; return 1; }
    i=0; until xenstore-read -s / >/dev/null 2>&1; do
        i=$((i+1)); [ $i -gt 300 ] && { say FATAL "xenstored not answering"; return 1; }; sleep 0.1
    done
    xen-init-dom0 || { say FATAL "xen-init-dom0 failed"; return 1; }
    xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xenconsoled.pid ||
        { say FATAL "xenconsoled failed"; return 1; }
    return 0
}

plan=all
if boot; then
    for a in $(cat /proc/cmdline); do case $a in xt.plan=*) plan=${a#xt.plan=} ;; xt.hpn=*) export HPN=${a#xt.hpn=} ;;
        xt.rc=*) export RC=${a#xt.rc=} ;; xt.rstt=*) export RSTT=${a#xt.rstt=} ;;
        xt.perf=*) export PERF_SET=${a#xt.perf=} ;; xt.dargs=*) export DARGS=$(echo "${a#xt.dargs=}" | tr '+' ' ') ;; esac; done
    say BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)s xen=$(xenstore-read /local/domain/0/name 2>/dev/null) plan=$plan ${DARGS:+dargs="$DARGS"} \
        xsd=$xsd kernel=$(uname -r)
    (while :; do sleep 60; echo "xentest heartbeat $(cut -d' ' -f1 /proc/uptime)" > /dev/kmsg; done) &
    hb=$!
    /opt/xentest/scenarios.sh "$plan"
    say SCENARIOS-EXIT rc=$?
    kill $hb 2>/dev/null
fi
say END uptime=$(cut -d' ' -f1 /proc/uptime)s
sync
busybox poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
while :; do sleep 60; done
