#!/usr/bin/env bash
# The NBD benchmark: raw `fio --ioengine=nbd` (libnbd) against xen-blkbackd's nbd engine
# serving the SAME nbdkit memory export to xen-blkbench, in the same run: 4 KiB
# randread and randwrite QD32, 1 MiB sequential read QD8.  Medians of BENCH_REPS (3)
# alternating runs.  Not a test.  See bench/BENCHMARKING.md.
#   bench/nbd.sh [BUILD_DIR]   env: BENCH_RUNTIME (s, 5), BENCH_SIZE_MIB (1024), BENCH_REPS (3),
#   BENCH_DAEMON_ARGS
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-5}
size_mib=${BENCH_SIZE_MIB:-1024}
reps=${BENCH_REPS:-3}
command -v nbdkit >/dev/null || { echo "nbd.sh: nbdkit not installed (scripts/deps.sh)" >&2; exit 1; }
dir=$(mktemp -d /dev/shm/xbd-nbd-XXXXXX)
. "$(dirname "$0")/lib.sh"
nbd_pid=
trap 'bench_stop; [ -n "$nbd_pid" ] && kill "$nbd_pid" 2>/dev/null; rm -rf "$dir"' EXIT

sock=$dir/nbd.sock
uri="nbd+unix:///?socket=$sock"
nbdkit -f --exit-with-parent -U "$sock" memory "${size_mib}M" 2>"$dir/nbdkit.log" &
nbd_pid=$!
for _ in $(seq 200); do nbdinfo --can connect "$uri" 2>/dev/null && break; sleep 0.05; done
# lay the export out once (the memory plugin allocates on first write)
fio --name=prep --ioengine=nbd --uri="$uri" --size=${size_mib}M --rw=write --bs=1M --iodepth=8 \
    --output=/dev/null >/dev/null 2>&1
# shellcheck disable=SC2086
bench_start --max-indirect-segments=256 ${BENCH_DAEMON_ARGS:-}

echo "# raw fio --ioengine=nbd vs xen-blkbackd nbd engine, same nbdkit memory export (${size_mib} MiB),"
echo "# $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs, nbdkit $(nbdkit --version | awk '{print $2}'),"
echo "# ${runtime}s per run, median of $reps"
printf '\n%-22s %9s %8s %9s | %9s %8s %9s %8s\n' workload raw-IOPS raw-MB/s raw-us/io IOPS MB/s us/io ours/raw
domid=1
row() { # label rw bs qd [xen-blkbench args]
  local label=$1 rw=$2 bs=$3 qd=$4; shift 4
  local -a r=() o=()
  run_pairs "$reps" "$uri" "$rw" "$bs" "$qd" "$@"
  # shellcheck disable=SC2046
  set -- $(med_summary r o)
  printf '%-22s %9s %8s %9s | %9s %8s %9s %8s\n' "$label" "$1" "$2" "$3" "$4" "$5" "$6" "$7"
}
row "4k randread QD32" randread 4k 32
row "4k randwrite QD32" randwrite 4k 32
row "1m seq read QD8" read 1m 8 --indirect-segs 256
echo
echo "# us/io: CPU time (user+system) per I/O; raw: the whole fio process (libnbd runs in it);"
echo "#        ours: the daemon's process (its queue threads run libnbd); nbdkit's CPU is in neither."
echo "# The frontend tool, the daemon and nbdkit share the CPUs: see bench/BENCHMARKING.md."
