#!/bin/bash
# `make check-xen`: boot Xen 4.17 + a Debian dom0 under qemu-system-x86_64 (TCG), run the
# real-Xen scenarios (tests/xen/scenarios.sh) with the real Linux blkfront in PV guests,
# read the results from the serial console, print one PASS/FAIL line per scenario and
# "N passed, N failed"; exit 0 only if nothing failed and the run completed in time.
#
# Usage: tests/xen/run.sh [--plan=all|baseline,kernel,qdisk,daemon,destroy,twoguests,resize,nbd,restart,user,tap,perf,qos,driverdom]
#                         [--dist=bookworm|trixie] [--timeout=SEC] [--no-build]
#                         [--accel=tcg|kvm] [--hotplug=N] [--restart-secs=S] [--rc=CFG+...]
#                         [--daemon-args=ARG+ARG...] [--perf=quick|full|off]
#   --perf=quick|full  the set of phase perf (tests/xen/perf.sh): quick (default, CI) or
#                      full (make bench-xen: more jobs, qdisk, 10 s runs, a big-ring guest)
#   --daemon-args=...  extra xen-blkbackd options for every daemon the scenarios start, in
#                      dom0 and the driver domain ('+' between options), e.g.
#                      --daemon-args=--seccomp=trap+--isolation=domain
#   --restart-secs=S  fio seconds per restart case (default 30)
#   --rc=CFG+...      configs of the diagnostic phase rootcause (copy+aio+persistent+map)
#   --dist=trixie  Debian 13 dom0 with Xen 4.20 (opt-in; default plan there: tap)
#   XEN_DIR  cache dir (default build/xen, build/xen-trixie); logs in $XEN_DIR/logs/ (run.log)
# Needs root (debootstrap, chroot) and the host packages in tests/xen/deps.sh.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PLAN="" TIMEOUT=3600 BUILD=1 ACCEL=tcg HPN=20 DIST=bookworm RC="" RSTT="" DARGS="" PERFSET=""
for a in "$@"; do
    case $a in
        --plan=*) PLAN=${a#*=} ;;
        --dist=*) DIST=${a#*=} ;;
        --timeout=*) TIMEOUT=${a#*=} ;;
        --no-build) BUILD=0 ;;
        --accel=*) ACCEL=${a#*=} ;;
        --hotplug=*) HPN=${a#*=} ;;
        --rc=*) RC=${a#*=} ;;
        --restart-secs=*) RSTT=${a#*=} ;;
        --daemon-args=*) DARGS=${a#*=} ;;
        --perf=*) PERFSET=${a#*=} ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done
case $DIST in
    bookworm) XEN_DIR=${XEN_DIR:-$ROOT/build/xen}; PLAN=${PLAN:-all} ;;
    trixie) XEN_DIR=${XEN_DIR:-$ROOT/build/xen-trixie}; PLAN=${PLAN:-tap} ;;
    *) echo "run.sh: --dist=bookworm|trixie" >&2; exit 2 ;;
esac

missing=""
for c in qemu-system-x86_64 debootstrap mkfs.ext4 cpio; do
    command -v $c > /dev/null || missing="$missing $c"
done
if [ -n "$missing" ]; then
    echo "check-xen: missing host tools:$missing; run: tests/xen/deps.sh --install" >&2
    exit 2
fi

t0=$(date +%s)
if [ $BUILD = 1 ]; then
    XEN_DIR=$XEN_DIR "$ROOT/tests/xen/build-images.sh" --dist=$DIST ||
        { echo "check-xen: image build failed" >&2; exit 2; }
fi
t_build=$(( $(date +%s) - t0 ))
HV=$(ls "$XEN_DIR"/xen-4.*-amd64 2>/dev/null | sort -V | tail -1)
for f in "${HV:-xen-4.x-amd64}" vmlinuz dom0-initrd.img dom0.img; do
    f=$XEN_DIR/${f##*/}
    [ -s "$f" ] || { echo "check-xen: $f missing (run without --no-build)" >&2; exit 2; }
done

mkdir -p "$XEN_DIR/logs"
stamp=$(date +%Y%m%d-%H%M%S)
LOG=$XEN_DIR/logs/serial-$stamp.log      # raw serial output
TLOG=$XEN_DIR/logs/run-$stamp.log        # the same with host timestamps (+seconds)
ln -sfn "run-$stamp.log" "$XEN_DIR/logs/run.log"
: > "$LOG"

case $ACCEL in
    tcg) accel="-accel tcg,thread=multi -cpu qemu64" ;;
    kvm) accel="-accel kvm -cpu host" ;;
    *) echo "run.sh: --accel=tcg|kvm" >&2; exit 2 ;;
esac
# livemig: SVM nested paging, so that Xen has HAP and can run a PVH guest (Debian's Xen has
# no shadow paging: no HVM/PVH without HAP); see scenarios.sh phase_livemig
case ",$PLAN," in *,livemig,*) [ $ACCEL = tcg ] && accel="$accel,+svm,+npt" ;; esac
# driverdom: a second copy of the dom0 image as /dev/vdb, the storage driver domain's root
# disk (dom0 serves it to the domain with qdisk; snapshot=on: a private overlay per drive)
ddisk=""
case ",$PLAN," in *,driverdom,*)
    ddisk="-drive file=$XEN_DIR/dom0.img,if=none,id=d1,format=raw,snapshot=on -device virtio-blk-pci,drive=d1" ;;
esac
dom0_args="root=/dev/vda rw console=hvc0 init=/opt/xentest/dom0-init.sh xt.plan=$(echo "$PLAN" | tr ',' '+') xt.hpn=$HPN${RC:+ xt.rc=$RC}${RSTT:+ xt.rstt=$RSTT}${DARGS:+ xt.dargs=$DARGS}${PERFSET:+ xt.perf=$PERFSET}"
xen_args="console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=1024M,max:1024M dom0_max_vcpus=2"

echo "check-xen: booting ${HV##*/} ($ACCEL, $DIST dom0) plan=$PLAN${DARGS:+ daemon-args=$DARGS} timeout=${TIMEOUT}s; log: $TLOG"
tb=$(date +%s)
# Plain `timeout -k 10` (not --foreground) signals QEMU's whole process group.
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -machine q35 $accel -smp 2 -m 3G \
    -display none -monitor none -no-reboot -nic none \
    -chardev file,id=ser0,path="$LOG" -serial chardev:ser0 \
    -kernel "$HV" -append "$xen_args" \
    -initrd "$XEN_DIR/vmlinuz $dom0_args,$XEN_DIR/dom0-initrd.img" \
    -drive file="$XEN_DIR/dom0.img",if=none,id=d0,format=raw,snapshot=on \
    -device virtio-blk-pci,drive=d0 $ddisk < /dev/null &
qpid=$!

# Relay: timestamp every serial line; show results and progress markers live.
(
    tail -n +1 -F --pid=$qpid "$LOG" 2>/dev/null | while IFS= read -r l; do
        printf '[%4ds] %s\n' $(( $(date +%s) - tb )) "${l//$'\r'/}"
    done > "$TLOG"
) &
rpid=$!
(
    tail -n +1 -F --pid=$qpid "$TLOG" 2>/dev/null | grep --line-buffered -E \
        '@@XT (RESULT|PHASE|BOOTED|FATAL|SUMMARY|END)|@@XT INFO (guest .* created|phase|xl create)|Panic|FATAL'
) &
lpid=$!

wait $qpid; qrc=$?
sleep 1; kill $rpid $lpid 2>/dev/null; wait $rpid $lpid 2>/dev/null
t_run=$(( $(date +%s) - tb ))

# ---------------------------------------------------------------- parse
tr -d '\r' < "$LOG" > "$LOG.txt"
npass=0 nfail=0 nskip=0
echo
echo "=== check-xen results ($ACCEL, plan=$PLAN) ==="
while IFS= read -r l; do
    rest=${l#*@@XT RESULT }
    st=${rest%% *}; rest=${rest#* }
    secs=${rest%% *}; rest=${rest#* }
    name=${rest%% :: *}; detail=${rest#* :: }
    [ "$detail" = "$rest" ] && detail=""
    printf '%-4s %-40s %5ss  %s\n' "$st" "$name" "$secs" "$detail"
    case $st in PASS) npass=$((npass+1)) ;; FAIL) nfail=$((nfail+1)) ;; *) nskip=$((nskip+1)) ;; esac
done < <(grep -a '@@XT RESULT ' "$LOG.txt" | sed 's/^.*\(@@XT RESULT \)/\1/')

# a result line in another shape would otherwise be lost, and its FAIL with it
bad=$(grep -a '@@XT' "$LOG.txt" | grep -a 'RESULT' | grep -avc '@@XT RESULT ')
if [ "$bad" != 0 ]; then
    printf '%-4s %-40s %5ss  %s\n' FAIL "suite: result lines readable" 0 "$bad lines name RESULT in another shape; see $TLOG"
    nfail=$((nfail+1))
fi
if ! grep -aq '@@XT SUMMARY' "$LOG.txt"; then
    if [ $qrc = 124 ] || [ $qrc = 137 ]; then why="timed out after ${TIMEOUT}s"; else why="QEMU exited ($qrc) before the end"; fi
    printf '%-4s %-40s %5ss  %s\n' FAIL "suite: completed" "$t_run" "$why; see $TLOG"
    nfail=$((nfail+1))
    grep -aE '@@XT FATAL|Panic|panic' "$LOG.txt" | head -5
fi
if grep -aq '@@XT TABLE' "$LOG.txt"; then
    echo
    echo "Backend comparison: the same guest, the same fio jobs (${PERFT:-10} s each, O_DIRECT), one boot."
    echo "TCG: absolute figures mean little, compare the ratios. dom0 CPU = busy jiffies of dom0's"
    echo "/proc/stat (all of dom0: backend threads, QEMU, the harness) per GB moved by the job."
    # rows: "<backend> rr4k=IOPS/MBs/cpu sr1m=... rw4k=..."
    grep -a '@@XT TABLE' "$LOG.txt" | sed 's/^.*@@XT TABLE //' | awk '
        BEGIN { name["rr4k"] = "randread 4k qd32"; name["sr1m"] = "seqread 1M qd4"; name["rw4k"] = "randwrite 4k qd32"
                printf "  %-18s %-15s %8s %8s %9s %14s\n", "job", "backend", "IOPS", "MB/s", "vs first", "dom0 CPU s/GB" }
        { be[NR] = $1; n = NR
          for (i = 2; i <= NF; i++) { split($i, kv, "="); split(kv[2], v, "/"); iops[NR, kv[1]] = v[1]; mbs[NR, kv[1]] = v[2]; cpu[NR, kv[1]] = v[3] } }
        END { split("rr4k sr1m rw4k", jobs, " ")
              for (j = 1; j <= 3; j++) { jb = jobs[j]
                  for (r = 1; r <= n; r++) {
                      b = iops[1, jb]
                      printf "  %-18s %-15s %8s %8s %9s %14s\n", (r == 1 ? name[jb] : ""), be[r], iops[r, jb], mbs[r, jb],
                             (b > 0 ? sprintf("%.2f", iops[r, jb] / b) : "-"), cpu[r, jb] } }
              printf "  (\"vs first\": IOPS relative to %s)\n", be[1] }'
fi
if grep -aq '@@XT CMP' "$LOG.txt"; then
    echo
    echo "Interleaved comparison (phase perf): one guest, kernel blkback on backend/vbd and xen-blkbackd"
    echo "on backend/vbd3 (+ qdisk in the full set) connected at once, each fio job run on each disk in"
    echo "turn; n rounds, medians over them, IOPS as median (min..max). vs kern: ratio of the IOPS"
    echo "medians. p50/p99: completion latency (us). CPU: dom0 busy s per GB moved. Per I/O: g.irq the"
    echo "guest's blkif interrupts (the backend's notifications), be.irq the backend's (the frontend's),"
    echo "be.cpu its own CPU us (its process or kernel threads), rw its read+write syscalls (userspace), sysc all its"
    echo "syscalls and the commonest kinds (strace round, full set only)."
    grep -a '@@XT CMP' "$LOG.txt" | sed 's/^.*@@XT CMP //' | awk '
        { be = $1; sfx = ""; if (index(be, "+")) { sfx = substr(be, index(be, "+")); be = substr(be, 1, index(be, "+") - 1) }
          job = $2 sfx; for (i = 3; i <= NF; i++) { split($i, kv, "="); v[NR, kv[1]] = kv[2] }
          split(v[NR, "iops"], io, "/"); med[NR] = io[1]; rng[NR] = io[2] ".." io[3]
          row[NR] = be; jb[NR] = job; n = NR; if (be == "kernel-blkback") kern[job] = io[1]
          if (!(job in seen)) { seen[job] = 1; order[++nj] = job } }
        END { f = "  %-18s %-14s %6s %11s %5s %6s %6s %7s %5s %5s %6s %6s %5s %5s  %s\n"
              printf f, "job", "backend", "IOPS", "(min..max)", "vs k", "MB/s", "p50", "p99", "CPU", "g.irq", "be.irq",
                  "be.cpu", "rw", "sysc", "commonest syscalls per I/O"
              for (o = 1; o <= nj; o++) { first = 1
                  for (r = 1; r <= n; r++) { if (jb[r] != order[o]) continue
                      printf f, (first ? order[o] : ""), row[r], med[r], "(" rng[r] ")",
                          (kern[jb[r]] > 0 ? sprintf("%.2f", med[r] / kern[jb[r]]) : "-"), v[r, "mbs"], v[r, "p50"], v[r, "p99"],
                          v[r, "cpu"], v[r, "girq"], v[r, "dirq"], v[r, "bcpu"], v[r, "rw"], v[r, "sc"], v[r, "top"]; first = 0 } }
              print "  (jobs: rr4k randread 4k qd32, qd1 randread 4k qd1, sr1m read 1M qd4, rw4k randwrite 4k qd32, sw64k write 64k qd8)" }'
fi
echo
echo "timings: image build ${t_build}s, boot+scenarios ${t_run}s (Xen to dom0 init: $(grep -a '@@XT BOOTED' "$TLOG" | head -1 | sed 's/^\[ *\([0-9]*\)s\].*/\1/')s)"
echo "$npass passed, $nfail failed, $nskip skipped"
kill -0 $qpid 2>/dev/null && { echo "check-xen: QEMU still running?!" >&2; kill -9 $qpid; }
[ $nfail = 0 ] && [ $npass -gt 0 ]
