#!/usr/bin/env bash
# The protocol-features benchmark: xen-blkbackd in each grant mode (map, copy,
# persistent) with 1 and 2 queues, against raw fio on the same store in the same run,
# on a tmpfs file and on a loop block device over it, plus a null engine for pure
# protocol cost.  Fixed-format table on stdout and in $OUT/matrix.txt, a PNG plot of
# 4 KiB randread IOPS vs queue depth in $OUT/iops-vs-qd.png.  Not a test.
# Each workload runs BENCH_RUNS times (raw fio, then every backend, again and again):
# the table has the medians, the ratio is the median of the per-round ratios ours/raw,
# its least..greatest in the spread column.
#   bench/matrix.sh [BUILD_DIR]   env: BENCH_RUNTIME (s, 2), BENCH_RUNS (3), BENCH_SIZE_MIB (512),
#   BENCH_MODES ("map copy persistent"), BENCH_QUEUES ("1 2"), BENCH_STORES ("file loop"),
#   BENCH_DAEMON_ARGS (extra daemon options, e.g. --persistent-cap=8192), BENCH_OUT
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-2}
runs=${BENCH_RUNS:-3}
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
hdr=$(printf '%-5s %-18s %-13s %9s %8s %6s %7s %7s %7s %7s %7s %7s %6s %11s' \
  store workload backend IOPS MB/s p50us p99us cpu-us map/io copy/io ntfy/io subm/io ratio spread)
{ echo "# xen-blkbackd protocol features benchmark, $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs, load $(uptime | sed 's/.*load average: //'), ${runtime}s per run, medians of $runs rounds"
  echo "# per I/O: cpu-us = daemon user+system CPU (raw: the fio process's, io_uring workers included);"
  echo "# map = grant map+unmap calls;${BENCH_DAEMON_ARGS:+ daemon args: $BENCH_DAEMON_ARGS;}"
  echo "# copy = grant-copy calls; ntfy = event notifications sent; subm = engine (io_uring) submits;"
  echo "# ratio = IOPS / raw fio IOPS of the same round (median over the rounds; spread: least..greatest)"
  echo "$hdr"; } | tee "$res"
plotdat=$OUT/iops-vs-qd.dat
: > "$plotdat"

domid=1
line() { # store label backend result [ratio least greatest]
  local r=$4
  printf '%-5s %-18s %-13s %9s %8s %6s %7s %7s %7s %7s %7s %7s %6s %11s\n' "$1" "$2" "$3" \
    "$(field iops "$r")" "$(field mbps "$r")" "$(field p50 "$r")" "$(field p99 "$r")" \
    "$(field cpu_us "$r")" "$(field map "$r")" "$(field copy "$r")" "$(field notify "$r")" \
    "$(field submit "$r")" "${5:-1.00}" "${6:+$6..$7}" | tee -a "$res"
}

# One workload on every backend: BENCH_RUNS rounds of raw fio then each mode x queues
# (a new guest each time), then the median lines.  store label target rw bs qd [raw-target]
run_workload() {
  local s=$1 label=$2 target=$3 rw=$4 bs=$5 qd=$6 rawt=${7:-$3}
  local -a raws=() backends=()
  local -A res_of=()
  local m q b
  for m in $modes; do for q in $queues; do backends+=("$m-q$q"); done; done
  for _ in $(seq "$runs"); do
    raws+=("$(raw_fio "$rawt" "$rw" "$bs" "$qd")")
    for b in "${backends[@]}"; do
      m=${b%-q*}; q=${b##*-q}
      local extra=("${common[@]}" --grant-mode "$m" --queues "$q")
      if [ "$m" = persistent ]; then extra+=(--persistent); fi
      local o; o=$(ours $domid "$target" "$rw" "$bs" "$qd" "${extra[@]}") || o="iops=0"
      domid=$((domid + 1))
      res_of[$b]+="$o"$'\n'
    done
  done
  local rawm; rawm=$(med_line "${raws[@]}")
  line "$s" "$label" raw "$rawm"
  if [ "$s" = file ] && [[ $label == 4k-randread-* ]]; then echo "raw $qd $(field iops "$rawm")" >> "$plotdat"; fi
  for b in "${backends[@]}"; do
    local -a os=()
    mapfile -t os < <(printf '%s' "${res_of[$b]}")
    local om; om=$(med_line "${os[@]}")
    local sp; read -r -a sp <<<"$(ratio_spread raws os)"
    line "$s" "$label" "$b" "$om" "${sp[@]}"
    if [ "$s" = file ] && [[ $label == 4k-randread-* ]]; then
      echo "$b $qd $(field iops "$om")" >> "$plotdat"
    fi
  done
}

run_store() { # store-name target
  local s=$1 target=$2
  for w in "${workloads[@]}"; do
    read -r label rw bs qd <<<"$w"
    run_workload "$s" "$label" "$target" "$rw" "$bs" "$qd"
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
run_workload null 4k-randread-qd128 "null:$((size_mib << 20))" randread 4k 128 null

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
