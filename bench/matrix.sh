#!/usr/bin/env bash
# The protocol-features benchmark: xen-blkbackd in each grant mode (map, copy,
# persistent) with 1 and 2 queues, against raw fio on the same store in the same run,
# on a tmpfs file and on a loop block device over it, plus a null engine for pure
# protocol cost.  Fixed-format table on stdout and in $OUT/matrix.txt, a PNG plot of
# 4 KiB randread IOPS vs queue depth in $OUT/iops-vs-qd.png.  Not a test.
#   bench/matrix.sh [BUILD_DIR]   env: BENCH_RUNTIME (s, 2), BENCH_SIZE_MIB (512),
#   BENCH_MODES ("map copy persistent"), BENCH_QUEUES ("1 2"), BENCH_STORES ("file loop"),
#   BENCH_DAEMON_ARGS (extra daemon options, e.g. --persistent-cap=8192), BENCH_OUT
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-2}
size_mib=${BENCH_SIZE_MIB:-512}
modes=${BENCH_MODES:-map copy persistent}
queues=${BENCH_QUEUES:-1 2}
stores=${BENCH_STORES:-file loop}
OUT=${BENCH_OUT:-$B/bench}
mkdir -p "$OUT"
dir=$(mktemp -d /dev/shm/xbd-matrix-XXXXXX)
img=$dir/disk.img
loopdev=
. "$(dirname "$0")/lib.sh"
cleanup() { bench_stop; [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

fio --name=prep --filename="$img" --size=${size_mib}M --rw=write --bs=1M --ioengine=psync --output=/dev/null
: > "$dir/null.dummy"
# ring order 2 (128 slots per queue) so QD 128 fits one queue; 256 indirect segments for 1 MiB
# shellcheck disable=SC2086
bench_start --max-ring-page-order=4 --max-indirect-segments=256 --persistent=yes ${BENCH_DAEMON_ARGS:-}
common=(--ring-order 2 --indirect-segs 256)

# label rw bs qd
workloads=(
  "4k-randread-qd1 randread 4k 1"
  "4k-randread-qd8 randread 4k 8"
  "4k-randread-qd32 randread 4k 32"
  "4k-randread-qd128 randread 4k 128"
  "4k-randwrite-qd32 randwrite 4k 32"
  "1m-read-qd8 read 1m 8"
  "1m-write-qd8 write 1m 8"
)

res=$OUT/matrix.txt
hdr=$(printf '%-5s %-18s %-11s %9s %8s %6s %7s %7s %7s %7s %7s %7s %6s' \
  store workload backend IOPS MB/s p50us p99us cpu-us map/io copy/io ntfy/io subm/io ratio)
{ echo "# xen-blkbackd protocol features benchmark, $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs, ${runtime}s per run"
  echo "# per I/O: cpu-us = daemon user+system CPU (raw: the fio process's, io_uring workers included);"
  echo "# map = grant map+unmap calls;${BENCH_DAEMON_ARGS:+ daemon args: $BENCH_DAEMON_ARGS;}"
  echo "# copy = grant-copy calls; ntfy = event notifications sent; subm = engine (io_uring) submits;"
  echo "# ratio = IOPS / raw fio IOPS on the same store in this run"
  echo "$hdr"; } | tee "$res"
plotdat=$OUT/iops-vs-qd.dat
: > "$plotdat"

domid=1
line() { # store label backend raw_iops result
  local r=$5
  printf '%-5s %-18s %-11s %9s %8s %6s %7s %7s %7s %7s %7s %7s %6s\n' "$1" "$2" "$3" \
    "$(field iops "$r")" "$(field mbps "$r")" "$(field p50 "$r")" "$(field p99 "$r")" \
    "$(field cpu_us "$r")" "$(field map "$r")" "$(field copy "$r")" "$(field notify "$r")" \
    "$(field submit "$r")" \
    "$(awk -v a="$(field iops "$r")" -v b="$4" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" | tee -a "$res"
}

run_store() { # store-name target
  local s=$1 target=$2
  for w in "${workloads[@]}"; do
    read -r label rw bs qd <<<"$w"
    local raw; raw=$(raw_fio "$target" "$rw" "$bs" "$qd")
    local ri; ri=$(field iops "$raw")
    line "$s" "$label" raw "$ri" "$raw"
    if [ "$s" = file ] && [[ $label == 4k-randread-* ]]; then echo "raw $qd $ri" >> "$plotdat"; fi
    for m in $modes; do
      for q in $queues; do
        local extra=("${common[@]}" --grant-mode "$m" --queues "$q")
        if [ "$m" = persistent ]; then extra+=(--persistent); fi
        local o; o=$(ours $domid "$target" "$rw" "$bs" "$qd" "${extra[@]}") || o="iops=0"
        domid=$((domid + 1))
        line "$s" "$label" "$m-q$q" "$ri" "$o"
        if [ "$s" = file ] && [[ $label == 4k-randread-* ]]; then
          echo "$m-q$q $qd $(field iops "$o")" >> "$plotdat"
        fi
      done
    done
  done
}

for s in $stores; do
  case $s in
    file) run_store file "$img";;
    loop)
      if [ "$(id -u)" = 0 ] && loopdev=$(losetup -f --show "$img" 2>/dev/null); then
        run_store loop "$loopdev"
        losetup -d "$loopdev"; loopdev=
      else
        echo "# loop: skipped (losetup not available)" | tee -a "$res"
      fi;;
  esac
done

# pure protocol cost: the null engine (no storage I/O), 4 KiB random read QD 128
raw=$(raw_fio null randread 4k 128)
line null 4k-randread-qd128 raw "$(field iops "$raw")" "$raw"
for m in $modes; do
  for q in $queues; do
    extra=("${common[@]}" --grant-mode "$m" --queues "$q")
    if [ "$m" = persistent ]; then extra+=(--persistent); fi
    o=$(ours $domid "null:$((size_mib << 20))" randread 4k 128 "${extra[@]}") || o="iops=0"
    domid=$((domid + 1))
    line null 4k-randread-qd128 "$m-q$q" "$(field iops "$raw")" "$o"
  done
done

echo "# targets: daemon cpu-us per 4k I/O <= raw fio's; 1m read >= 0.95 of raw; null >= 1M IOPS per daemon core;" | tee -a "$res"
echo "#          map/io ~ 0 with persistent grants; ntfy/io <= 0.1 at QD >= 32" | tee -a "$res"

if command -v gnuplot >/dev/null && [ -s "$plotdat" ]; then
  series=$(awk '{ print $1 }' "$plotdat" | awk '!seen[$0]++')
  plot=""
  for sname in $series; do
    grep "^$sname " "$plotdat" | awk '{ print $2, $3 }' > "$OUT/plot-$sname.dat"
    plot="$plot${plot:+, }'$OUT/plot-$sname.dat' using 1:2 with linespoints title '$sname'"
  done
  gnuplot <<GP
set terminal png size 900,560
set output '$OUT/iops-vs-qd.png'
set title '4 KiB random read on a tmpfs file: xen-blkbackd grant modes vs raw fio'
set xlabel 'queue depth'
set ylabel 'IOPS'
set logscale x 2
set key left top
set grid
plot $plot
GP
  echo "# plot: $OUT/iops-vs-qd.png; table: $res"
fi
