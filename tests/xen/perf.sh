# check-xen phase perf (sourced by scenarios.sh): the backend comparison worth steering by
# (issue 11): one guest, its disks on kernel blkback (backend/vbd, on a loop device with direct I/O), xen-blkbackd
# (backendtype=tap: backend/vbd3, so both are connected at once and nothing is swapped)
# and, in the full set, QEMU's qdisk; the guest's step cmp runs every job on each disk in
# turn, PERF_ROUNDS times, interleaved (guest-init.sh st_cmp). Per run dom0 samples, at the
# guest's "@@G PJ start|end" lines: its CPU (/proc/stat), the backend's interrupts from the
# frontend (/proc/interrupts: kernel blkback's "blkif-backend", the daemon's and QEMU's
# "evtchn:<comm>" lines of /dev/xen/evtchn), the backend's own CPU time (utime+stime of
# /proc/<pid>/stat: a process's whole thread group, exited threads such as io_uring's
# io-wq workers included; kernel blkback's "<domid>.<vdev>-<queue>" threads, which leaves
# out its softirq and loop-device work: dom0's CPU covers those) and, for userspace
# backends, their read+write system calls (/proc/<pid>/io syscr+syscw, whole group too: the
# event channel device's pending reads and unmask writes, eventfds). All read with shell
# builtins: nothing in the backends' path. The full set adds one more round on the daemon's disk under `strace -c -f`
# for its system calls per I/O by kind (perturbed: not in the medians). Not ftrace: turning
# a tracepoint on or off patches kernel text, and in the PV dom0 of Linux 6.12 that ended
# in "Oops: int3" in ttwu_do_activate under text_poke_bp (seen on the 12th toggle).
# Results: one "@@XT CMP" line per backend and job with medians over the rounds and the
# spread; run.sh prints the table.
# PERF_SET (run.sh --perf=quick|full|off, xt.perf): quick (CI): kernel + daemon, jobs
# rr4k+qd1+sr1m+rw4k, 5 s each; full (make bench-xen): + qdisk, + sw64k, 10 s each, + the
# strace round, + a guest with max_indirect_segments=256 max_ring_page_order=4 for the
# 1 MiB job; off: no comparison at all (phase_baseline's jobs neither: CI's 4.17 run).
PERF_SET=${PERF_SET:-quick}
PERF_ROUNDS=${PERF_ROUNDS:-3}

# backend of a disk (by vdev) in this phase: label, /proc/interrupts name pattern, how to
# find its processes (a command printing pids)
declare -A PB_LABEL PB_IRQ PB_PIDS
pb_set() { PB_LABEL[$1]=$2; PB_IRQ[$1]=$3; PB_PIDS[$1]=$4; }
daemon_pids() { local p; p=$(dpid); [ -n "$p" ] && echo "$p $(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')"; }
qdisk_pids() { pgrep -f "xen-qemu-system-i386 .*-xen-domid $1( |$)" 2>/dev/null | tr '\n' ' '; }
# kernel blkback's ring threads: "%d.%s-%d" of domid, vdev, queue (Linux
# drivers/block/xen-blkback/xenbus.c blkback_name, xen_update_blkif_status)
kblk_pids() { pgrep "^$1\.$2-" 2>/dev/null | tr '\n' ' '; }   # domid vdev

irqsum() {   # pattern: sum of the /proc/interrupts counts whose name matches (ERE)
    awk -v re="$1" '$NF ~ re { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts
}
# "<CPU ticks (utime+stime)> <read+write syscalls>" of processes, whole thread groups (builtins)
bk_counts() {
    local p l k v c=0 s=0
    for p in "$@"; do
        read -r l < /proc/$p/stat 2>/dev/null || continue
        set -- ${l##*) }            # from field 3 (state) on: utime, stime are 14, 15
        c=$((c + ${12:-0} + ${13:-0}))
        while read -r k v; do case $k in syscr:|syscw:) s=$((s + v)) ;; esac; done < /proc/$p/io 2>/dev/null
    done
    echo "$c $s"
}

# The monitor: follows the guest console (tail -F), and for each "@@G PJ start|end <dev>
# <job.round>" appends "<start|end> <dev> <job.round> <busy jiffies> <backend irqs>
# <backend CPU ticks> <backend read+write syscalls>" to /tmp/pc.<guest>. Round "s"
# (full set) runs the backend under strace -c -f: its summary goes to /tmp/st.<dev>.<job>.
pc_monitor_start() {   # guest
    local g=$1
    rm -f /tmp/pc.$g /tmp/st.*
    (stp=""
     tail -n +1 -F $CONS/guest-$g.log 2>/dev/null | while IFS= read -r l; do
        case $l in *"@@G PJ "*) ;; *) continue ;; esac
        read -r _ u n sy _ _ irq sirq _ < /proc/stat
        l=${l%$'\r'}; set -- ${l##*@@G PJ }     # start|end dev job.round
        pids=$(${PB_PIDS[$2]})
        echo "$1 $2 $3 $((u + n + sy + irq + sirq)) $(irqsum "${PB_IRQ[$2]}") $(bk_counts $pids)" >> /tmp/pc.$g
        if [ "$1" = start ] && [ "${3##*.}" = s ] && [ -n "$pids" ] && command -v strace > /dev/null; then
            strace -c -f -q $(for p in $pids; do echo "-p $p"; done) -o /tmp/st.$2.${3%.s} 2>/dev/null &
            stp=$!
        elif [ "$1" = end ] && [ -n "$stp" ]; then
            kill -INT $stp 2>/dev/null; wait $stp 2>/dev/null; stp=""
        fi
    done) &
    PCMON=$!
}
pc_monitor_stop() { [ -n "${PCMON:-}" ] && { pkill -P $PCMON 2>/dev/null; kill $PCMON 2>/dev/null; }; PCMON=; }

# pc_rows guest suffix: "@@XT CMP" lines from the guest's "@@G PC" lines and the monitor's
# samples: per backend and job, medians over the rounds (and min..max of IOPS) of IOPS,
# MB/s, clat p50/p99 (us), dom0 CPU s/GB, the guest's interrupts per I/O (the backend's
# notifications), the backend's interrupts per I/O (the frontend's notifications), its own
# CPU us per I/O and read+write syscalls per I/O; from the strace round
# (full set) all its system calls per I/O and the four commonest kinds.
pc_rows() {
    local g=$1 sfx=${2:-} d f hz; hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
    for d in "${!PB_LABEL[@]}"; do
        glog $g | grep "@@G PC $d " | sed 's/.*@@G PC //' > /tmp/pcl.$g.$d
        [ -s /tmp/pcl.$g.$d ] || continue
        # strace -c: "% time seconds usecs/call calls [errors] syscall" -> "<job> <calls> <syscall>"
        for f in /tmp/st.$d.*; do
            [ -f "$f" ] && awk -v j="${f#/tmp/st.$d.}" '$1 ~ /^[0-9.]+$/ && $NF != "total" && NF >= 5 { print j, $4, $NF }' "$f"
        done > /tmp/scl.$g.$d 2>/dev/null
        awk -v be="${PB_LABEL[$d]}$sfx" -v dev=$d -v hz=$hz -v pc=/tmp/pc.$g -v sc=/tmp/scl.$g.$d \
            -v user=$([ "${PB_LABEL[$d]}" = kernel-blkback ] && echo 0 || echo 1) '
            function med(s,   a, n, i, j, t) { n = split(s, a, " ")
                if (n == 0) return "-"
                for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
            function mn(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
            function mx(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
            function d(k, jr) { return (("end", jr) in k) && (("start", jr) in k) }
            BEGIN { bs["rr4k"] = 4; bs["qd1"] = 4; bs["rw4k"] = 4; bs["sr1m"] = 1024; bs["sw64k"] = 64
                    while ((getline x < pc) > 0) { split(x, f, " ")
                        if (f[2] == dev) { cpu[f[1], f[3]] = f[4]; irq[f[1], f[3]] = f[5]; csw[f[1], f[3]] = f[6]; rws[f[1], f[3]] = f[7] } }
                    while ((getline x < sc) > 0) { split(x, f, " "); kind[f[1], f[3]] += f[2]; sct[f[1]] += f[2] } }
            $3 == "s" { if (bs[$2] > 0) sio[$2] = $6 / bs[$2]; next }    # the strace round: counts only
            { job = $2; jr = $2 "." $3; ios = (bs[job] > 0) ? $6 / bs[job] : 0
              if (!(job in seen)) { seen[job] = 1; order[++nj] = job }
              iops[job] = iops[job] " " $4; mbs[job] = mbs[job] " " sprintf("%.1f", $5 * 1024 / 1e6)
              if ($7 != "-") p50[job] = p50[job] " " $7; if ($8 != "-") p99[job] = p99[job] " " $8
              if (ios > 0) {
                  gi[job] = gi[job] " " sprintf("%.3f", $9 / ios)
                  if (d(cpu, jr)) {
                      cp[job] = cp[job] " " sprintf("%.0f", (cpu["end", jr] - cpu["start", jr]) / hz / ($6 * 1024 / 1e9))
                      di[job] = di[job] " " sprintf("%.3f", (irq["end", jr] - irq["start", jr]) / ios)
                      cs[job] = cs[job] " " sprintf("%.0f", (csw["end", jr] - csw["start", jr]) / hz * 1e6 / ios)
                      if (user) rw[job] = rw[job] " " sprintf("%.2f", (rws["end", jr] - rws["start", jr]) / ios) } } }
            END { for (o = 1; o <= nj; o++) { job = order[o]; top = ""; m = 0
                      if (sio[job] > 0 && sct[job] > 0) {
                          for (k in kind) { split(k, kk, SUBSEP); if (kk[1] == job) { m++; kn[m] = kk[2]; kv[m] = kind[k] } }
                          for (i = 2; i <= m; i++) for (j = i; j > 1 && kv[j - 1] < kv[j]; j--) {
                              t = kv[j]; kv[j] = kv[j - 1]; kv[j - 1] = t; t = kn[j]; kn[j] = kn[j - 1]; kn[j - 1] = t }
                          for (i = 1; i <= m && i <= 4; i++) top = top (i > 1 ? "," : "") kn[i] ":" sprintf("%.2f", kv[i] / sio[job]) }
                      printf "%s %s iops=%s/%s/%s mbs=%s p50=%s p99=%s cpu=%s girq=%s dirq=%s bcpu=%s rw=%s sc=%s top=%s n=%d\n",
                          be, job, med(iops[job]), mn(iops[job]), mx(iops[job]), med(mbs[job]), med(p50[job]), med(p99[job]),
                          med(cp[job]), med(gi[job]), med(di[job]), med(cs[job]), (user ? med(rw[job]) : "-"),
                          (m > 0 ? sprintf("%.2f", sct[job] / sio[job]) : "-"), (top == "" ? "-" : top),
                          split(iops[job], z, " ") } }' /tmp/pcl.$g.$d
    done > /tmp/cmp.$g
    while read -r l; do say CMP "$l"; done < /tmp/cmp.$g
}

phase_perf() {
    local t0=$(now) g=pc1 devs steps r why="" disks qd=0 jobs secs extra
    case $PERF_SET in
        off) report SKIP 0 "perf: interleaved comparison" "--perf=off"; return ;;
        full) jobs=rr4k+qd1+sr1m+rw4k+sw64k secs=10; [ -x /usr/libexec/xen-qemu-system-i386 ] && qd=1 ;;
        *) jobs=rr4k+qd1+sr1m+rw4k secs=5 ;;
    esac
    # kernel blkback serves backend/vbd, the daemon backend/vbd3 only
    # (after phase tap the running daemon serves vbd,vbd3: it would take xvdb from the kernel)
    daemon_serving vbd3 || why="xen-blkbackd did not start"
    [ -n "$why" ] || modprobe --ignore-install xen-blkback || why="cannot load xen-blkback"
    if [ -n "$why" ]; then report FAIL 0 "perf: interleaved comparison" "$why"; return; fi
    DAEMON_OK=1
    mkimg $IMG/pk.img 64; mkimg $IMG/pd.img 64
    # Kernel blkback on a loop device with direct I/O, as the daemon opens its image
    # O_DIRECT: given the file itself, xl's block script makes a buffered loop device and
    # the kernel's reads come from dom0's page cache (the guest's pre-written region), the
    # daemon's from the disk: that measured the cache, not the backends (qd1 p50 2.9 ms
    # against 8.5 ms in the first run).
    PERF_KLOOP=$(losetup --direct-io=on --show -f $IMG/pk.img 2>/tmp/perf.losetup) ||
        { report FAIL 0 "perf: interleaved comparison" "losetup: $(head -c 160 /tmp/perf.losetup)"; perf_end; return; }
    info "perf: kernel blkback's disk $PERF_KLOOP (direct I/O $(cat /sys/block/${PERF_KLOOP#/dev/}/loop/dio 2>/dev/null)), the daemon's $IMG/pd.img O_DIRECT"
    pb_set xvdb kernel-blkback '^blkif-backend$' ""
    pb_set xvdc xen-blkbackd '^evtchn:(xen-blkbackd|xbd-)' daemon_pids
    disks=("$(spec kernel xvdb rw $PERF_KLOOP)" "$(spec tap xvdc rw $IMG/pd.img)"); devs=xvdb:xvdc
    if [ $qd = 1 ]; then
        mkimg $IMG/pq.img 64; disks+=("$(spec qdisk xvdd rw $IMG/pq.img)"); devs=$devs:xvdd
    fi
    extra="xt.prounds=$PERF_ROUNDS xt.pjobs=$jobs xt.perft=$secs"
    [ $PERF_SET = full ] && extra="$extra xt.psdev=xvdc"      # the strace round on the daemon's disk
    if ! start_guest $g "neg@xvdb+neg@xvdc+cmp@$devs" "$extra" "${disks[@]}"; then
        report FAIL $(( $(now) - t0 )) "perf: interleaved comparison" "xl create failed: $(grep -m1 error /tmp/$g.create | cut -c1-160)"
        perf_end; return
    fi
    PB_PIDS[xvdb]="kblk_pids ${DOMID_OF[$g]} xvdb"
    [ $qd = 1 ] && pb_set xvdd qemu-qdisk '^evtchn:qemu' "qdisk_pids ${DOMID_OF[$g]}"
    pc_monitor_start $g
    wait_marker $g '@@G STEP neg@xvdc' 300 && check_negotiation $g vbd3 $XVDC $((64 * 2048)) > /dev/null
    wait_guest $g $(( 600 + PERF_ROUNDS * 3 * (secs + 20) * 5 ))
    pc_monitor_stop
    pc_rows $g
    r=$(gstep $g cmp@$devs)
    local nrow; nrow=$(grep -c . /tmp/cmp.$g 2>/dev/null)
    if [ "$(st_status "$r")" = PASS ] && [ "${nrow:-0}" -ge 2 ]; then
        report PASS "$(st_secs "$r")" "perf: interleaved comparison" "$(st_detail "$r"); $nrow rows"
    else
        report FAIL "$(st_secs "${r:-FAIL 0s}")" "perf: interleaved comparison" "${r:-no cmp result}; $nrow rows"
    fi
    kernel_log perf $g
    # full: the 1 MiB job with the largest rings both backends offer
    if [ $PERF_SET = full ]; then
        g=pc2; unset 'PB_LABEL[xvdd]'
        extra="xt.prounds=$PERF_ROUNDS xt.pjobs=sr1m xt.perft=$secs xt.bf=max_indirect_segments=256:max_ring_page_order=4:feature_persistent=0"
        # 256 indirect segments x ring order 4 (512 slots) x 2 queues x 2 disks: with
        # persistent grants blkfront preallocates a page per segment of every slot, ~514 MiB
        # per queue (fill_grant_buffer), and the guest died "Out of memory" in insmod at
        # 384 and at 768 MiB (bench-xen 2026-12-03 20:14, 2026-12-04 01:27). So this guest
        # offers no persistent grants to either backend (xen_blkfront.feature_persistent=0).
        if GMEM=768 start_guest $g "neg@xvdb+neg@xvdc+cmp@xvdb:xvdc" "$extra" "${disks[@]:0:2}"; then
            PB_PIDS[xvdb]="kblk_pids ${DOMID_OF[$g]} xvdb"
            pc_monitor_start $g
            if wait_marker $g '@@G STEP neg@xvdc' 300; then
                check_negotiation $g vbd $XVDB $((64 * 2048)) > /dev/null; check_negotiation $g vbd3 $XVDC $((64 * 2048)) > /dev/null
            fi
            wait_guest $g $(( 600 + PERF_ROUNDS * (secs + 20) * 2 ))
            pc_monitor_stop
            pc_rows $g "+ring4/ind256"
            r=$(gstep $g cmp@xvdb:xvdc)
            report "$(st_status "${r:-FAIL}")" "$(st_secs "${r:-FAIL 0s}")" "perf: 1 MiB job, ring order 4, 256 indirect" "${r:-no cmp result}"
        else
            report FAIL 0 "perf: 1 MiB job, ring order 4, 256 indirect" "xl create failed"
        fi
    fi
    perf_end
    info "phase perf: $(( $(now) - t0 ))s"
}
perf_end() {   # the kernel backend out again, its loop device gone, the daemon back to its usual backend types
    [ -n "${PERF_KLOOP:-}" ] && { losetup -d $PERF_KLOOP 2>/dev/null || info "perf: losetup -d $PERF_KLOOP failed"; }
    PERF_KLOOP=
    for i in 1 2 3 4 5; do lsmod | grep -q '^xen_blkback' || break; rmmod xen_blkback 2>/dev/null || sleep 1; done
    daemon_alive && { daemon_stop TERM 60 || info "perf: the daemon did not stop: $DSTOP_WHY"; }
    start_daemon > /dev/null || info "perf: xen-blkbackd did not start again"
}
