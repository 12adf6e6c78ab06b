#!/usr/bin/env bash
# The headline benchmark: raw fio vs xen-blkbackd through the userspace frontend on the
# SAME tmpfs file, the two alternating (raw, ours, raw, ours, ...) BENCH_RUNS times per
# workload; medians, and the spread of the per-pair ratios.  The daemon runs at its
# defaults (grant mode auto, ring order <= 4, 256 indirect segments, queues = CPUs);
# the frontend negotiates what a Linux guest booted with xen_blkfront.max_queues=2
# max_ring_page_order=2 max_indirect_segments=256 does (2 queues of 128 slots, 1 MiB
# requests), except the last two rows: blkfront's own defaults (1 ring page, 32 indirect
# segments; one queue) and 11-segment requests without INDIRECT.  Not a test.  See
# bench/BENCHMARKING.md.
#   bench/bench.sh [BUILD_DIR]   env: BENCH_RUNTIME (s, 5), BENCH_RUNS (3), BENCH_SIZE_MIB (1024),
#                                BENCH_DAEMON_ARGS, BENCH_FRONTEND_ARGS
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-5}
runs=${BENCH_RUNS:-3}
size_mib=${BENCH_SIZE_MIB:-1024}
dir=$(mktemp -d /dev/shm/xbd-bench-XXXXXX)
img=$dir/disk.img
. "$(dirname "$0")/lib.sh"
trap 'bench_stop; rm -rf "$dir"' EXIT
read -r -a fe <<<"${BENCH_FRONTEND_ARGS:---queues 2 --ring-order 2 --indirect-segs 256}"

echo "# xen-blkbackd vs raw fio, $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs, load $(uptime | sed "s/.*load average: //");" \
     "$img (${size_mib} MiB tmpfs), ${runtime}s per run, medians of $runs alternating runs"
echo "# daemon: defaults${BENCH_DAEMON_ARGS:+ + $BENCH_DAEMON_ARGS}; frontend: ${fe[*]} unless the row says otherwise"
fio --name=prep --filename="$img" --size=${size_mib}M --rw=write --bs=1M --ioengine=psync --output=/dev/null
# shellcheck disable=SC2086
bench_start ${BENCH_DAEMON_ARGS:-}

fmt='%-34s %9s %9s | %9s %11s | %8s %11s %8s\n'
printf "\n$fmt" workload raw-IOPS raw-us/io IOPS daemon-us/io ours/raw '(min..max)' cpu-o/r
domid=1
row() { # label rw bs qd [xen-blkbench args]
  local label=$1 rw=$2 bs=$3 qd=$4; shift 4
  local -a r=() o=()
  run_pairs "$runs" "$img" "$rw" "$bs" "$qd" "$@"
  local s; read -r -a s <<<"$(pair_summary r o)"
  printf "$fmt" "$label" "${s[0]}" "${s[1]}" "${s[2]}" "${s[3]}" "${s[4]}" "(${s[5]}..${s[6]})" "${s[7]}"
}
row "4k randread QD32" randread 4k 32 "${fe[@]}"
row "4k randread QD128" randread 4k 128 "${fe[@]}"
row "4k randwrite QD32" randwrite 4k 32 "${fe[@]}"
row "1M read QD8" read 1m 8 "${fe[@]}"
row "1M write QD8" write 1m 8 "${fe[@]}"
row "4k randread QD32, blkfront defaults" randread 4k 32
row "44k (11 seg) seq read QD8" read 44k 8 "${fe[@]}" --indirect-segs 0
echo
echo "# us/io: CPU time (user+system) per I/O: the daemon from /proc; raw fio: the whole fio process,"
echo "#        its io_uring worker threads included (see bench/BENCHMARKING.md).  ours/raw: IOPS,"
echo "#        median of the per-pair ratios (min..max over the pairs); cpu-o/r: the same for us/io."
echo "# The frontend tool shares the CPUs with the daemon: see bench/BENCHMARKING.md."
echo "# load after: $(uptime | sed "s/.*load average: //")"
