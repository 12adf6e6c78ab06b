#!/bin/sh
# PV test guest /init (busybox): loads xen-blkfront, runs the steps named on the kernel
# command line, prints "@@G ..." result lines on hvc0 (dom0 reads them from xenconsoled's
# log), then powers off. Steps: xt.steps=step[@dev[:dev]]+step...; see tests/xen/README.md.
#   neg@d      negotiated features        dd@d     dd write/read/md5
#   fio@d[:e]  fio --verify (all disks at once)   perf@d   fio IOPS/bandwidth
#   cmp@d:e[:f] the interleaved comparison (rounds x jobs x disks), see st_cmp
#   flush@d    fsync writes must reach the backend as flushes
#   discard@d  blkdiscard; neighbouring data intact     ro@d   read-only disk
#   fs@d       ext4 mkfs/write/remount/md5/fsck   hp@d     hotplug cycles driven by dom0,
#   qos@d      4k randread IOPS under the limit dom0 set (check-xen phase qos)
#   qosp@L:N:R:RATE  the neighbour's IOPS next to L held by the daemon vs R by fio (phase qos)
#   rsz@d      ext4 with files, "@@G RSZ-READY"; dom0 grows the disk online; resize2fs
#              while mounted, files intact, fsck clean
#              then 15 s idle (dom0's leak snapshot)
#   fiolong@d  fio until dom0 destroys us
#   ctr@d      print /sys/block/d/stat, stay idle 25 s (dom0 compares the daemon's counters)
#   pat@d      8 MiB random pattern at 128 MiB + fsync, md5 printed (before fiolong)
#   patv@d     the pattern at 128 MiB must have md5 xt.patmd5 (after destroy + re-create)
#   swap@d     wait (up to 240 s) for dom0 to hot-attach /dev/d (same-guest comparison)
#   rterm@d rkill@d rooo@d rmulti@d rsecond@d   restart cases: fio --verify while dom0
#              restarts the daemon; rsave@d rmig@d: the same while dom0 saves and
#              restores us, or migrates us to itself; "@@G RST-RUNNING <case>" when fio starts; fio ends
#              (--trigger-file) xt.rstt= s after dom0's token "XT-GO <case>" appears at
#              250 MiB of xvdb;
#              prints the pause (fio's max latency) and any new blkfront/kernel messages;
#              rooo adds a randread job (the disk is dm-delay: writes +100 ms, reads not)
#   patc@d     the pattern written by pat@d in this guest must still read back
#   fiorc@d    root-cause load: 4k randwrite qd16 (verify) + 4k randread qd8 until destroyed
# xt.role=dd instead: the storage driver domain (mount /dev/xvda, switch_root to dd-init.sh)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp; mkdir -p /mnt/t
exec < /dev/console > /dev/console 2>&1

say() { echo "@@G $*"; }
arg() { for a in $(cat /proc/cmdline); do case $a in "$1"=*) echo "${a#*=}"; return ;; esac; done; }
STEPS=$(arg xt.steps); BF=$(arg xt.bf); ROMD5=$(arg xt.romd5); HPMD5=$(arg xt.hpmd5)
PATMD5=$(arg xt.patmd5); PERFT=$(arg xt.perft); PERFT=${PERFT:-10}
HPN=$(arg xt.hpn); HPN=${HPN:-20}
RSTT=$(arg xt.rstt); RSTT=${RSTT:-15}
say BOOT steps=$STEPS bf=$BF

for pass in 1 2; do for m in $(cat /lib/modules/load-order); do
    n=$(echo ${m%.ko} | tr - _); grep -q "^$n " /proc/modules && continue
    case $m in
        xen-blkfront.ko) insmod /lib/modules/$m $(echo "$BF" | tr ':' ' ') || say INFO "insmod $m failed" ;;
        *) insmod /lib/modules/$m 2>/dev/null ;;
    esac
done; done

waitdev() {   # dev [seconds]: wait until /dev/<dev> exists with a non-zero size
    local w=0 n=$(( ${2:-30} * 10 ))
    while [ $w -lt $n ]; do
        [ -b /dev/$1 ] && [ "$(cat /sys/block/$1/size 2>/dev/null)" != 0 ] && return 0
        sleep 0.1; w=$((w+1))
    done
    return 1
}

# xt.role=dd: this domain is the storage driver domain of check-xen phase driverdom. Its
# root is /dev/xvda (a copy of the dom0 image); switch to it and run dd-init.sh there.
if [ "$(arg xt.role)" = dd ]; then
    mkdir -p /newroot
    if waitdev xvda 60 && mount -t ext4 /dev/xvda /newroot; then
        umount /proc /sys /tmp 2>/dev/null
        mount --move /dev /newroot/dev
        exec switch_root /newroot /opt/xentest/dd-init.sh
    fi
    say INFO "driver domain: cannot mount /dev/xvda"
    poweroff -f
fi
up() { cut -d. -f1 /proc/uptime; }
# result step PASS|FAIL detail  ->  "@@G STEP <step> <status> <seconds>s <detail>"
result() { say STEP "$1" "$2" "$(( $(up) - T_STEP ))s" "$3"; }
fiojob() { fio --output-format=terse --terse-version=3 "$@" 2>&1; }

st_neg() {
    d=$1
    waitdev $d || { result neg@$d FAIL "no /dev/$d"; return; }
    q=$(ls /sys/block/$d/mq 2>/dev/null | wc -l)
    feat=$(dmesg | grep "blkfront: $d:" | tail -1 | sed 's/.*blkfront: [a-z]*: //; s/; */;/g; s/ /_/g')
    Q=/sys/block/$d/queue
    say INFO neg $d sectors=$(cat /sys/block/$d/size) queues=$q ro=$(cat /sys/block/$d/ro) \
        lbs=$(cat $Q/logical_block_size) max_hw_kb=$(cat $Q/max_hw_sectors_kb) \
        max_segs=$(cat $Q/max_segments) wc=$(cat $Q/write_cache | tr ' ' _) \
        dgran=$(cat $Q/discard_granularity) dmax=$(cat $Q/discard_max_bytes) feat="$feat"
    result neg@$d PASS "queues=$q"
}

st_dd() {
    d=$1
    waitdev $d || { result dd@$d FAIL "no /dev/$d"; return; }
    dd if=/dev/urandom of=/tmp/pat bs=1M count=8 2>/dev/null
    want=$(md5sum < /tmp/pat | cut -c1-32)
    dd if=/tmp/pat of=/dev/$d bs=1M seek=4 conv=fsync 2>/dev/null || { result dd@$d FAIL "write failed"; return; }
    blockdev --flushbufs /dev/$d; echo 3 > /proc/sys/vm/drop_caches
    got=$(dd if=/dev/$d bs=1M skip=4 count=8 2>/dev/null | md5sum | cut -c1-32)
    rm -f /tmp/pat
    [ "$got" = "$want" ] && result dd@$d PASS "md5 $got" || result dd@$d FAIL "md5 $got != $want"
}

st_fio() {   # fio@xvdb[:xvdc]: one job per disk, concurrently
    devs=$(echo "$1" | tr ':' ' '); jobs=""
    for d in $devs; do
        waitdev $d || { result fio@$1 FAIL "no /dev/$d"; return; }
        jobs="$jobs --name=$d --filename=/dev/$d"
    done
    out=$(fio --direct=1 --ioengine=libaio --rw=randwrite --bsrange=4k-128k --size=24M \
              --iodepth=16 --verify=crc32c --verify_fatal=1 --do_verify=1 \
              --group_reporting --output-format=terse --terse-version=3 $jobs 2>&1)
    rc=$?
    errs=$(echo "$out" | grep -ci 'verify\|error\|bad')
    if [ $rc = 0 ] && [ "$errs" = 0 ]; then
        result fio@$1 PASS "24MiB/disk randwrite 4k-128k qd16 + verify crc32c"
    else
        echo "$out" | head -20
        result fio@$1 FAIL "fio rc=$rc"
    fi
}

# perf@d: the comparison jobs, the same for every backend: 4k randread qd32, 1M sequential
# read qd4, 4k randwrite qd32, PERFT (10) s each, O_DIRECT libaio over a pre-written 32 MiB
# region. "@@G PJ start|end <d> <job>" bracket each job: dom0 samples its /proc/stat there
# (dom0 CPU seconds per GB). Prints "@@G PERF <d> <job>=<iops>/<KiB/s>/<KiB total> ...".
st_perf() {
    d=$1
    waitdev $d || { result perf@$d FAIL "no /dev/$d"; return; }
    fio --name=fill --filename=/dev/$d --direct=1 --ioengine=libaio --rw=write --bs=1M \
        --size=32M --iodepth=4 > /dev/null 2>&1
    common="--filename=/dev/$d --direct=1 --ioengine=libaio --size=32M --time_based --runtime=$PERFT"
    line="" bad=""
    for job in rr4k sr1m rw4k; do
        case $job in
            rr4k) a="--rw=randread --bs=4k --iodepth=32"; f=6 ;;
            sr1m) a="--rw=read --bs=1M --iodepth=4"; f=6 ;;
            rw4k) a="--rw=randwrite --bs=4k --iodepth=32"; f=47 ;;
        esac
        say PJ start $d $job
        # terse v3: 6/7/8 = read KiB total, KiB/s, IOPS; 47/48/49 the same for writes
        r=$(fiojob --name=$job $common $a | awk -F';' -v f=$f '/^3;/{print $(f+2) "/" $(f+1) "/" $f}')
        say PJ end $d $job
        [ -n "$r" ] || { bad="$bad $job"; r=0/0/0; }
        line="$line $job=$r"
    done
    say PERF $d$line
    [ -z "$bad" ] && result perf@$d PASS "${PERFT}s per job" || result perf@$d FAIL "fio failed:$bad"
}

# cmp@d1:d2[:d3]: the interleaved comparison (check-xen phase perf, make bench-xen): for
# round 1..xt.prounds (3), for each job of xt.pjobs (rr4k+qd1+sr1m+rw4k+sw64k), for each
# disk in turn: one fio job (PERFT s, O_DIRECT libaio, over a pre-written 32 MiB region),
# bracketed by "@@G PJ start|end <d> <job>.<round>" (dom0 samples CPU, interrupts and
# syscalls there); then "@@G PC <d> <job> <round> <IOPS> <KiB/s> <KiB total> <clat p50 us>
# <clat p99 us> <blkif interrupts here>"; xt.psdev=<d> adds a round "s" on <d> alone (dom0
# runs that disk's backend under strace -c for it). The interrupts are this guest's blkif lines of
# /proc/interrupts (only the disk under test is busy): the backend's notifications.
#   rr4k randread 4k qd32   qd1 randread 4k qd1   sr1m read 1M qd4   rw4k randwrite 4k qd32
#   sw64k write 64k qd8
blkirqs() { awk '/blkif/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts; }
st_cmp() {
    devs=$(echo "$1" | tr ':' ' ')
    rounds=$(arg xt.prounds); rounds=${rounds:-3}
    jobs=$(arg xt.pjobs); jobs=$(echo "${jobs:-rr4k+qd1+sr1m+rw4k+sw64k}" | tr '+' ' ')
    for d in $devs; do
        waitdev $d || { result cmp@$1 FAIL "no /dev/$d"; return; }
        fio --name=fill --filename=/dev/$d --direct=1 --ioengine=libaio --rw=write --bs=1M \
            --size=32M --iodepth=4 > /dev/null 2>&1
    done
    bad="" n=0 ps=$(arg xt.psdev)
    # xt.psdev: one more round "s" on that disk only (dom0 runs its backend under strace)
    for r in $(seq 1 $rounds) ${ps:+s}; do for job in $jobs; do for d in $devs; do
        [ "$r" = s ] && [ "$d" != "$ps" ] && continue
        case $job in
            rr4k) a="--rw=randread --bs=4k --iodepth=32"; f=6 ;;
            qd1) a="--rw=randread --bs=4k --iodepth=1"; f=6 ;;
            sr1m) a="--rw=read --bs=1M --iodepth=4"; f=6 ;;
            rw4k) a="--rw=randwrite --bs=4k --iodepth=32"; f=47 ;;
            sw64k) a="--rw=write --bs=64k --iodepth=8"; f=47 ;;
            *) bad="$bad unknown job $job;"; continue ;;
        esac
        i0=$(blkirqs)
        say PJ start $d $job.$r
        # terse v3: read KiB total, KiB/s, IOPS in fields 6/7/8, completion latency
        # percentiles ("50.000000%=<us>") in 18-37; writes 41 fields further on
        o=$(fiojob --name=$job --filename=/dev/$d --direct=1 --ioengine=libaio --size=32M \
                --time_based --runtime=$PERFT $a)
        say PJ end $d $job.$r
        i1=$(blkirqs)
        v=$(echo "$o" | awk -F';' -v f=$f '/^3;/ { p50 = "-"; p99 = "-"
                for (i = f + 12; i < f + 32; i++) { split($i, kv, "=")
                    if (kv[1] == "50.000000%") p50 = kv[2]; if (kv[1] == "99.000000%") p99 = kv[2] }
                print $(f+2), $(f+1), $f, p50, p99 }')
        [ -n "$v" ] || { bad="$bad $job.$r@$d: $(echo "$o" | tail -1 | cut -c1-80);"; v="0 0 0 - -"; }
        say PC $d $job $r $v $((i1 - i0))
        n=$((n + 1))
    done; done; done
    [ -z "$bad" ] && result cmp@$1 PASS "$n fio runs ($rounds rounds of $(echo $jobs) on $(echo $devs), ${PERFT}s each)" ||
        result cmp@$1 FAIL "fio failed:$bad"
}

st_ctr() {
    d=$1
    waitdev $d || { result ctr@$d FAIL "no /dev/$d"; return; }
    sync; blockdev --flushbufs /dev/$d
    a=$(cat /sys/block/$d/stat | tr -s ' ' | sed 's/^ //')
    say CTR $d $a
    sleep 25                    # dom0 reads the daemon's counters, then xentop's (tap)
    b=$(cat /sys/block/$d/stat | tr -s ' ' | sed 's/^ //')
    say CTR-END $d $b
    # fields 1-8 and 12-17: 9-11 are the in-flight/time counters
    if [ "$(echo $a | cut -d' ' -f1-8,12-17)" = "$(echo $b | cut -d' ' -f1-8,12-17)" ]; then
        result ctr@$d PASS "idle for dom0's snapshot"
    else
        result ctr@$d FAIL "I/O during the idle window"
    fi
}

st_pat() {
    d=$1
    waitdev $d || { result pat@$d FAIL "no /dev/$d"; return; }
    dd if=/dev/urandom of=/tmp/pat bs=1M count=8 2>/dev/null
    m=$(md5sum < /tmp/pat | cut -c1-32)
    dd if=/tmp/pat of=/dev/$d bs=1M seek=128 conv=fsync 2>/dev/null || { result pat@$d FAIL "write failed"; return; }
    rm -f /tmp/pat
    echo $m > /tmp/patmd5
    say PAT $d $m
    result pat@$d PASS "8MiB at 128MiB, md5 $m, fsync done"
}

st_patv() {
    d=$1
    waitdev $d || { result patv@$d FAIL "no /dev/$d"; return; }
    got=$(dd if=/dev/$d bs=1M skip=128 count=8 2>/dev/null | md5sum | cut -c1-32)
    [ "$got" = "$PATMD5" ] && result patv@$d PASS "pattern intact (md5 $got)" ||
        result patv@$d FAIL "pattern md5 $got != ${PATMD5:-?}"
}

st_swap() {
    d=$1
    say SWAP-READY $d
    waitdev $d 240 && result swap@$d PASS "/dev/$d attached" || result swap@$d FAIL "/dev/$d never appeared"
}

flushes() { awk -v d=$1 '$3==d{print $19}' /proc/diskstats; }
st_flush() {
    d=$1
    waitdev $d || { result flush@$d FAIL "no /dev/$d"; return; }
    wc=$(cat /sys/block/$d/queue/write_cache)
    before=$(flushes $d)
    fio --name=fsync --filename=/dev/$d --rw=write --bs=4k --size=1M --offset=64M \
        --fsync=1 --ioengine=sync > /tmp/fio.out 2>&1
    rc=$?
    after=$(flushes $d)
    n=$((after - before))
    if [ "$wc" != "write back" ]; then
        result flush@$d FAIL "write_cache='$wc' (no feature-flush-cache)"
    elif [ $rc != 0 ]; then
        head -10 /tmp/fio.out; result flush@$d FAIL "fio --fsync=1 rc=$rc"
    elif [ $n -lt 200 ]; then
        result flush@$d FAIL "only $n flushes completed for 256 fsyncs"
    else
        result flush@$d PASS "$n flushes completed"
    fi
}

st_discard() {
    d=$1
    waitdev $d || { result discard@$d FAIL "no /dev/$d"; return; }
    dmax=$(cat /sys/block/$d/queue/discard_max_bytes)
    [ "$dmax" -gt 0 ] || { result discard@$d FAIL "discard not advertised"; return; }
    # A = 200..216 MiB (discarded), B = 216..232 MiB (must survive)
    dd if=/dev/urandom of=/tmp/pat bs=1M count=16 2>/dev/null
    dd if=/tmp/pat of=/dev/$d bs=1M seek=200 conv=fsync 2>/dev/null
    dd if=/tmp/pat of=/dev/$d bs=1M seek=216 conv=fsync 2>/dev/null
    want=$(md5sum < /tmp/pat | cut -c1-32); rm -f /tmp/pat
    if ! blkdiscard -o $((200 << 20)) -l $((16 << 20)) /dev/$d; then
        result discard@$d FAIL "blkdiscard failed"; return
    fi
    blockdev --flushbufs /dev/$d; echo 3 > /proc/sys/vm/drop_caches
    gotb=$(dd if=/dev/$d bs=1M skip=216 count=16 2>/dev/null | md5sum | cut -c1-32)
    gota=$(dd if=/dev/$d bs=1M skip=200 count=16 2>/dev/null | md5sum | cut -c1-32)
    zero=$(dd if=/dev/zero bs=1M count=16 2>/dev/null | md5sum | cut -c1-32)
    z=no; [ "$gota" = "$zero" ] && z=yes
    if [ "$gotb" != "$want" ]; then
        result discard@$d FAIL "data next to the discarded range changed"
    else
        result discard@$d PASS "16MiB discarded, reads back zero: $z; neighbour intact"
    fi
}

st_ro() {
    d=$1
    waitdev $d || { result ro@$d FAIL "no /dev/$d"; return; }
    ro=$(blockdev --getro /dev/$d)
    got=$(dd if=/dev/$d bs=1M count=16 2>/dev/null | md5sum | cut -c1-32)
    if dd if=/dev/zero of=/dev/$d bs=4k count=1 conv=fsync 2>/dev/null; then w=succeeded; else w=refused; fi
    if [ "$ro" != 1 ]; then result ro@$d FAIL "device not read-only (getro=$ro)"
    elif [ "$got" != "$ROMD5" ]; then result ro@$d FAIL "content md5 $got != $ROMD5"
    elif [ $w != refused ]; then result ro@$d FAIL "write succeeded"
    else result ro@$d PASS "ro=1, content ok, write refused"
    fi
}

# fs_fill step d MiB files: mkfs.ext4, mount on /mnt/t, a MiB random file and `files`
# small ones; sum1 = their md5. fs_recheck step d: umount, drop caches, remount, sum2,
# umount, e2fsck -fn (rc). Both print the step's FAIL result and return 1 on failure.
fs_fill() {
    local step=$1 d=$2 k=0
    mkfs.ext4 -q -F /dev/$d > /tmp/mkfs.out 2>&1 || { cat /tmp/mkfs.out; result $step FAIL "mkfs failed"; return 1; }
    mount -t ext4 /dev/$d /mnt/t || { result $step FAIL "mount failed"; return 1; }
    dd if=/dev/urandom of=/mnt/t/big bs=1M count=$3 2>/dev/null
    while [ $k -lt $4 ]; do echo "file $k $(date)" > /mnt/t/f$k; k=$((k+1)); done
    sync
    sum1=$(cat /mnt/t/big /mnt/t/f* | md5sum | cut -c1-32)
}
fs_recheck() {
    local step=$1 d=$2
    umount /mnt/t || { result $step FAIL "umount failed"; return 1; }
    echo 3 > /proc/sys/vm/drop_caches
    mount -t ext4 /dev/$d /mnt/t || { result $step FAIL "remount failed"; return 1; }
    sum2=$(cat /mnt/t/big /mnt/t/f* | md5sum | cut -c1-32)
    umount /mnt/t
    e2fsck -fn /dev/$d > /tmp/fsck.out 2>&1; rc=$?
    [ $rc = 0 ] || tail -5 /tmp/fsck.out
}

st_fs() {
    d=$1
    waitdev $d || { result fs@$d FAIL "no /dev/$d"; return; }
    fs_fill fs@$d $d 24 200 || return
    fs_recheck fs@$d $d || return
    if [ "$sum1" != "$sum2" ]; then result fs@$d FAIL "file md5 changed across remount"
    elif [ $rc != 0 ]; then result fs@$d FAIL "e2fsck rc=$rc"
    else result fs@$d PASS "ext4 24MiB+200 files, remount md5 ok, fsck clean"
    fi
}

st_rsz() {   # ext4 on d, files; dom0 grows the disk online; resize2fs while mounted
    d=$1
    waitdev $d || { result rsz@$d FAIL "no /dev/$d"; return; }
    fs_fill rsz@$d $d 16 100 || return
    s0=$(cat /sys/block/$d/size); b0=$(df -k /mnt/t | awk 'NR == 2 { print $2 }')
    say RSZ-READY $d $s0
    local w=0
    while [ "$(cat /sys/block/$d/size)" = "$s0" ] && [ $w -lt 1200 ]; do sleep 0.1; w=$((w+1)); done
    s1=$(cat /sys/block/$d/size)
    [ "$s1" != "$s0" ] || { umount /mnt/t; result rsz@$d FAIL "size still $s0 sectors 120 s after RSZ-READY"; return; }
    resize2fs /dev/$d > /tmp/rsz.out 2>&1 || { cat /tmp/rsz.out; umount /mnt/t; result rsz@$d FAIL "resize2fs failed"; return; }
    b1=$(df -k /mnt/t | awk 'NR == 2 { print $2 }')
    echo "after resize" > /mnt/t/new; sync
    fs_recheck rsz@$d $d || return
    if [ "$sum1" != "$sum2" ]; then result rsz@$d FAIL "file md5 changed across the resize"
    elif [ $rc != 0 ]; then result rsz@$d FAIL "e2fsck rc=$rc"
    elif [ "$b1" -le "$b0" ]; then result rsz@$d FAIL "filesystem did not grow ($b0 -> $b1 KiB)"
    else result rsz@$d PASS "sectors $s0 -> $s1 online, ext4 ${b0} -> ${b1} KiB by resize2fs while mounted, files intact, fsck clean"
    fi
}

st_hp() {   # dom0 attaches/detaches /dev/<d> HPN times; we read it each time
    local d=$1 ok=0 i=1 j got
    say HP-READY
    while [ $i -le $HPN ]; do
        waitdev $d 120 || { say INFO "hp: cycle $i: no /dev/$d"; break; }
        got=$(dd if=/dev/$d bs=1M count=1 2>/dev/null | md5sum | cut -c1-32)
        [ "$got" = "$HPMD5" ] && ok=$((ok+1))
        say HP $i $got
        j=0; while [ -b /dev/$d ] && [ $j -lt 1200 ]; do sleep 0.1; j=$((j+1)); done
        [ -b /dev/$d ] && { say INFO "hp: cycle $i: /dev/$d never went away"; break; }
        i=$((i+1))
    done
    [ $ok = $HPN ] && result hp@$d PASS "$ok/$HPN cycles read ok" || result hp@$d FAIL "$ok/$HPN cycles read ok"
    # stay idle on every disk while dom0 takes the daemon's after-cycles resource snapshot
    say HP-IDLE; sleep 15; say HP-IDLE-END
}

st_fiolong() {
    d=$1
    waitdev $d || { result fiolong@$d FAIL "no /dev/$d"; return; }
    say FIO-RUNNING
    fio --name=long --filename=/dev/$d --direct=1 --ioengine=libaio --rw=randrw --bs=64k \
        --iodepth=32 --size=64M --time_based --runtime=600 > /dev/null 2>&1
    result fiolong@$d FAIL "fio ended (guest was not destroyed)"
}

st_patc() {
    d=$1
    waitdev $d || { result patc@$d FAIL "no /dev/$d"; return; }
    want=$(cat /tmp/patmd5 2>/dev/null)
    blockdev --flushbufs /dev/$d; echo 3 > /proc/sys/vm/drop_caches
    got=$(dd if=/dev/$d bs=1M skip=128 count=8 2>/dev/null | md5sum | cut -c1-32)
    [ -n "$want" ] && [ "$got" = "$want" ] && result patc@$d PASS "pattern intact (md5 $got)" ||
        result patc@$d FAIL "pattern md5 $got != ${want:-? (no pat step)}"
}

# Restart cases. fio runs O_DIRECT libaio with --verify=crc32c --verify_fatal=1 and
# --verify_backlog (written blocks are read back and checked while the job runs, so the
# check does not depend on a final verify pass). dom0 is much slower than the guest under
# TCG, so fio is not time-bounded: a gate loop polls a token dom0 writes at 250 MiB of
# xvdb after its action ("XT-GO <case>", O_DIRECT reads, so they also wait for the
# daemon), lets the I/O run RSTT more seconds on the new daemon, then creates fio's
# --trigger-file, which ends the run like a runtime would (rc 0, full stats; an exec
# job with --exitall does not: with time_based it runs to the runtime). The pause the
# guest saw = fio's largest total latency (submit to completion) over reads and writes
# (terse v3 fields 39 and 80, usec).
TOKBLK=$((250 * 256))         # 4 KiB block of the dom0 -> guest token on xvdb
kmsg_bad() {   # new kernel messages since line $1 that mean a blkfront problem
    dmesg | tail -n +$(( $1 + 1 )) | grep -E 'response references no pending request|I/O error|failed|blkfront|vbd vbd-|WARNING:|BUG:|Oops|Call Trace|blocked for more' |
        grep -vE 'blkfront: xvd[a-z]+: (flush diskcache|barrier or flush): '
}
st_rst() {   # case dev
    c=$1 d=$2
    waitdev $d || { result r$c@$d FAIL "no /dev/$d"; return; }
    n0=$(dmesg | wc -l)
    rm -f /tmp/stop-$c
    (while :; do
        t=$(dd if=/dev/xvdb bs=4096 skip=$TOKBLK count=1 iflag=direct 2>/dev/null | head -c 40 | tr -d '\000')
        case "$t" in "XT-GO $c "*) break ;; esac
        sleep 1
    done
    say RST-GO $c; sleep $RSTT; : > /tmp/stop-$c) &
    gate=$!
    common="--direct=1 --ioengine=libaio --time_based --runtime=900 --filename=/dev/$d"
    if [ $c = ooo ]; then
        jobs="--name=w --rw=randwrite --bs=4k --iodepth=16 --offset=0 --size=16M --verify=crc32c --verify_fatal=1 --verify_backlog=64
              --name=r --rw=randread --bs=4k --iodepth=8 --offset=32M --size=16M"
    else
        jobs="--name=w --rw=randwrite --bsrange=4k-64k --iodepth=32 --offset=0 --size=32M --verify=crc32c --verify_fatal=1 --verify_backlog=64"
    fi
    # progress monitor (diagnosis of a stuck case): in-flight and completed I/Os of the disk
    (while :; do set -- $(cat /sys/block/$d/stat); say RST-MON $c $(up)s inflight=$(cat /sys/block/$d/inflight | tr -s ' ' | sed 's/^ //; s/ /+/') done_r=$1 done_w=$5; sleep 10; done) &
    mon=$!
    say RST-RUNNING $c
    t0=$(up)
    out=$(cd /tmp && fio --trigger-file=/tmp/stop-$c $common --output-format=terse --terse-version=3 $jobs 2>&1)
    rc=$?
    kill $mon $gate 2>/dev/null
    say RST-FIO-END $c
    lines=$(echo "$out" | grep '^3;')
    # error, max latency (usec), write mean latency, KiB written
    stats=$(echo "$lines" | awk -F';' '{ if ($39 > m) m = $39; if ($80 > m) m = $80; e += $5; kb += $47
            if ($81 > wm) wm = $81 } END { printf "%d %d %d %d", m / 1000, e, wm / 1000, kb / 1024 }')
    set -- $stats; pause=${1:-?} ferr=${2:-?} wmean=${3:-?} mb=${4:-?}
    bad=$(kmsg_bad $n0)
    detail="pause ${pause} ms (fio max latency; write mean ${wmean} ms), ${mb} MiB written in $(( $(up) - t0 ))s"
    if [ $rc != 0 ] || [ -z "$lines" ] || [ "$ferr" != 0 ]; then
        echo "$out" | grep -v '^3;' | head -20
        result r$c@$d FAIL "fio rc=$rc error=$ferr; $detail"
    elif [ -n "$bad" ]; then
        echo "$bad" | head -20
        result r$c@$d FAIL "$(echo "$bad" | wc -l) new blkfront/kernel messages, e.g. $(echo "$bad" | head -1 | cut -c1-100); $detail"
    else
        result r$c@$d PASS "fio verify ok, no blkfront messages; $detail"
    fi
}

st_fiorc() {
    d=$1
    waitdev $d || { result fiorc@$d FAIL "no /dev/$d"; return; }
    say FIO-RUNNING
    fio --direct=1 --ioengine=libaio --filename=/dev/$d --time_based --runtime=600 \
        --name=w --rw=randwrite --bs=4k --iodepth=16 --offset=0 --size=16M --verify=crc32c --verify_fatal=1 --verify_backlog=64 \
        --name=r --rw=randread --bs=4k --iodepth=8 --offset=32M --size=16M > /dev/null 2>&1
    result fiorc@$d FAIL "fio ended (guest was not destroyed)"
}

# qos@d: 4k randread qd16, 12 s after a 2 s ramp (the token bucket's burst spent); prints
# "@@G QOS <d> <IOPS>" for dom0 to compare with the limit it set (check-xen phase qos)
st_qos() {
    d=$1
    waitdev $d || { result qos@$d FAIL "no /dev/$d"; return; }
    r=$(fiojob --name=qos --filename=/dev/$d --direct=1 --ioengine=libaio --rw=randread --bs=4k \
        --iodepth=16 --size=32M --time_based --runtime=12 --ramp_time=2 | awk -F';' '/^3;/{print $8}')
    [ -n "$r" ] || { result qos@$d FAIL "fio failed"; return; }
    say QOS $d $r
    result qos@$d PASS "4k randread qd16, 12 s: $r IOPS"
}

# qosp@L:N:R:RATE: the neighbour rounds of check-xen phase qos.  Each round runs two
# concurrent 4k randread qd16 jobs for 12 s after a 2 s ramp: "free" rounds R (no limit in
# the backend) held at RATE IOPS by fio itself (--rate_iops) next to the unlimited N,
# "qos" rounds L (dom0 set qos-iops=RATE) unthrottled by fio next to N; 2 of each,
# interleaved.  Prints "@@G QOSP <free|qos> <round> <L or R IOPS> <N IOPS>": what N keeps
# next to a guest the daemon holds at RATE, against next to one that holds itself there.
st_qosp() {
    a=$1; l=${a%%:*}; a=${a#*:}; n=${a%%:*}; a=${a#*:}; r=${a%%:*}; rate=${a#*:}
    for d in $l $n $r; do waitdev $d || { result qosp@$1 FAIL "no /dev/$d"; return; }; done
    for round in 1 2; do
        for kind in free qos; do
            if [ $kind = free ]; then dev=$r; lim="--rate_iops=$rate"; else dev=$l; lim=; fi
            out=$(fiojob --direct=1 --ioengine=libaio --rw=randread --bs=4k --iodepth=16 \
                --size=32M --time_based --runtime=12 --ramp_time=2 \
                --name=lim --filename=/dev/$dev $lim --name=nb --filename=/dev/$n |
                awk -F';' '/^3;/{printf "%s ", $8}')
            set -- $out
            [ $# -eq 2 ] || { result qosp@$l FAIL "fio failed ($kind round $round)"; return; }
            say QOSP $kind $round $1 $2
        done
    done
    result qosp@$l PASS "2 free and 2 qos rounds"
}

for s in $(echo "$STEPS" | tr '+' ' '); do
    name=${s%%@*}; dev=${s#*@}
    say RUN $s
    T_STEP=$(up)
    case $name in
        neg|dd|fio|perf|cmp|flush|discard|ro|fs|rsz|hp|fiolong|ctr|pat|patv|patc|swap|fiorc|qos|qosp) st_$name $dev ;;
        rterm|rkill|rooo|rmulti|rsecond|rsave|rmig) st_rst ${name#r} $dev ;;
        *) result $s FAIL "unknown step" ;;
    esac
done

T_STEP=$(up)
# Any kernel warning, and any blkfront/vbd message but the feature summary it prints on connect
bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace|hung_task|blocked for more|I/O error|blkfront|vbd vbd-' |
      grep -vE 'blkfront: xvd[a-z]+: (flush diskcache|barrier or flush): ')
if [ -n "$bad" ]; then
    echo "$bad" | head -30
    result kernel-log FAIL "$(echo "$bad" | wc -l) suspicious kernel log lines"
else
    result kernel-log PASS ""
fi
dmesg | grep -E 'blkfront' | head -12
say DONE
sync
poweroff -f
