#!/bin/bash
# `make check-xen`: boot Xen 4.17 + a Debian dom0 under qemu-system-x86_64 (TCG), run the
# real-Xen scenarios (tests/xen/scenarios.sh) with the real Linux blkfront in PV guests,
# read the results from the serial console, print one PASS/FAIL line per scenario and
# "N passed, N failed"; exit 0 only if nothing failed and the run completed in time.
#
# Usage: tests/xen/run.sh [--plan=all|kernel,qdisk,daemon,destroy,twoguests] [--timeout=SEC]
#                         [--no-build] [--accel=tcg|kvm] [--hotplug=N]
#   XEN_DIR  cache dir (default build/xen); logs go to $XEN_DIR/logs/ (latest: run.log)
# Needs root (debootstrap, chroot) and the host packages in tests/xen/deps.sh.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
XEN_DIR=${XEN_DIR:-$ROOT/build/xen}
PLAN=all TIMEOUT=1200 BUILD=1 ACCEL=tcg HPN=20
for a in "$@"; do
    case $a in
        --plan=*) PLAN=${a#*=} ;;
        --timeout=*) TIMEOUT=${a#*=} ;;
        --no-build) BUILD=0 ;;
        --accel=*) ACCEL=${a#*=} ;;
        --hotplug=*) HPN=${a#*=} ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done

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
    "$ROOT/tests/xen/build-images.sh" || { echo "check-xen: image build failed" >&2; exit 2; }
fi
t_build=$(( $(date +%s) - t0 ))
for f in xen-4.17-amd64 vmlinuz dom0-initrd.img dom0.img; do
    [ -s "$XEN_DIR/$f" ] || { echo "check-xen: $XEN_DIR/$f missing (run without --no-build)" >&2; exit 2; }
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
dom0_args="root=/dev/vda rw console=hvc0 init=/opt/xentest/dom0-init.sh xt.plan=$(echo "$PLAN" | tr ',' '+') xt.hpn=$HPN"
xen_args="console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=1024M,max:1024M dom0_max_vcpus=2"

echo "check-xen: booting Xen ($ACCEL) plan=$PLAN timeout=${TIMEOUT}s; log: $TLOG"
tb=$(date +%s)
# Plain `timeout -k 10` (not --foreground) signals QEMU's whole process group.
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -machine q35 $accel -smp 2 -m 3G \
    -display none -monitor none -no-reboot -nic none \
    -chardev file,id=ser0,path="$LOG" -serial chardev:ser0 \
    -kernel "$XEN_DIR/xen-4.17-amd64" -append "$xen_args" \
    -initrd "$XEN_DIR/vmlinuz $dom0_args,$XEN_DIR/dom0-initrd.img" \
    -drive file="$XEN_DIR/dom0.img",if=none,id=d0,format=raw,snapshot=on \
    -device virtio-blk-pci,drive=d0 < /dev/null &
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

if ! grep -aq '@@XT SUMMARY' "$LOG.txt"; then
    if [ $qrc = 124 ] || [ $qrc = 137 ]; then why="timed out after ${TIMEOUT}s"; else why="QEMU exited ($qrc) before the end"; fi
    printf '%-4s %-40s %5ss  %s\n' FAIL "suite: completed" "$t_run" "$why; see $TLOG"
    nfail=$((nfail+1))
    grep -aE '@@XT FATAL|Panic|panic' "$LOG.txt" | head -5
fi
if grep -aq '@@XT TABLE' "$LOG.txt"; then
    echo
    echo "Backend comparison (same boot, TCG: only the ratios mean anything):"
    grep -a '@@XT TABLE' "$LOG.txt" | sed 's/^.*@@XT TABLE //' | awk '
        NR == 1 { printf "  %-16s %16s %16s %16s\n", "backend", "randread 4k IOPS", "randwrite 4k IOPS", "seqread 1M MiB/s"; next }
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[i] = kv[2] }
          if (base == "") { b2 = v[2]; b3 = v[3]; b4 = v[4]; base = $1 }
          printf "  %-16s %10s (%4.2f) %10s (%4.2f) %10s (%4.2f)\n", $1, v[2], (b2 ? v[2]/b2 : 0), v[3], (b3 ? v[3]/b3 : 0), v[4], (b4 ? v[4]/b4 : 0) }
        END { if (base != "") printf "  (ratios relative to %s)\n", base }'
fi
echo
echo "timings: image build ${t_build}s, boot+scenarios ${t_run}s (Xen to dom0 init: $(grep -a '@@XT BOOTED' "$TLOG" | head -1 | sed 's/^\[ *\([0-9]*\)s\].*/\1/')s)"
echo "$npass passed, $nfail failed, $nskip skipped"
kill -0 $qpid 2>/dev/null && { echo "check-xen: QEMU still running?!" >&2; kill -9 $qpid; }
[ $nfail = 0 ] && [ $npass -gt 0 ]
