#!/usr/bin/env bash
# The first benchmark (issue: foundation): raw fio vs xen-blkbackd through the userspace
# frontend on the SAME tmpfs file in the SAME run, 4 KiB random read QD 32 and 44 KiB
# (11 segments) sequential read QD 8.  Not a test.  See bench/BENCHMARKING.md.
#   bench/bench.sh [BUILD_DIR]   env: BENCH_RUNTIME (s, 5), BENCH_SIZE_MIB (1024), BENCH_DAEMON_ARGS
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-5}
size_mib=${BENCH_SIZE_MIB:-1024}
dir=$(mktemp -d /dev/shm/xbd-bench-XXXXXX)
img=$dir/disk.img
. "$(dirname "$0")/lib.sh"
trap 'bench_stop; rm -rf "$dir"' EXIT

echo "# xen-blkbackd vs raw fio, $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs; $img (${size_mib} MiB tmpfs), ${runtime}s per run"
fio --name=prep --filename="$img" --size=${size_mib}M --rw=write --bs=1M --ioengine=psync --output=/dev/null
# shellcheck disable=SC2086
bench_start ${BENCH_DAEMON_ARGS:-}

printf '\n%-28s %9s %8s %9s | %9s %8s %11s %8s\n' workload raw-IOPS raw-MB/s raw-us/io IOPS MB/s daemon-us/io ours/raw
domid=1
row() { # label rw bs qd [xen-blkbench args]
  local label=$1 rw=$2 bs=$3 qd=$4; shift 4
  local r o
  r=$(raw_fio "$img" "$rw" "$bs" "$qd")
  o=$(ours $domid "$img" "$rw" "$bs" "$qd" "$@"); domid=$((domid + 1))
  printf '%-28s %9s %8s %9s | %9s %8s %11s %8s\n' "$label" \
    "$(field iops "$r")" "$(field mbps "$r")" "$(field cpu_us "$r")" \
    "$(field iops "$o")" "$(field mbps "$o")" "$(field cpu_us "$o")" \
    "$(awk -v a="$(field iops "$o")" -v b="$(field iops "$r")" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
}
row "4k randread QD32" randread 4k 32
row "44k (11 seg) seq read QD8" read 44k 8 --indirect-segs 0
echo
echo "# us/io: CPU time (user+system) per I/O: the daemon from /proc; raw fio: the whole fio process,"
echo "#        its io_uring worker threads included (see bench/BENCHMARKING.md)."
echo "# The frontend tool shares the CPUs with the daemon: see bench/BENCHMARKING.md."
