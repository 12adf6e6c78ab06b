#!/usr/bin/env bash
# The QoS benchmark: one guest limited by a backend key (qos-iops, then
# qos-bps) and one unlimited neighbour on the SAME daemon, running at the same
# time.  Reports the limited guest's achieved/limit ratio (target 1 +- 5 %) and
# the neighbour's throughput against its throughput alone.  Medians of
# BENCH_REPS (3) runs.  Not a test.  See bench/BENCHMARKING.md.
#   bench/qos.sh [BUILD_DIR]   env: BENCH_RUNTIME (s, 5), BENCH_REPS (3),
#   QOS_IOPS (2000), QOS_BPS (50M), BENCH_DAEMON_ARGS
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-5}
reps=${BENCH_REPS:-3}
iops_limit=${QOS_IOPS:-2000}
bps_limit=${QOS_BPS:-50M}
size_mib=256
dir=$(mktemp -d /dev/shm/xbd-qos-XXXXXX)
. "$(dirname "$0")/lib.sh"
trap 'bench_stop; rm -rf "$dir"' EXIT

for i in 1 2; do truncate -s ${size_mib}M "$dir/disk$i.img"; done
# shellcheck disable=SC2086
bench_start --direct-io=no ${BENCH_DAEMON_ARGS:-}

bytes_of() { # 50M -> 52428800 (K M G: x1024)
  local v=$1 m=1
  case $v in *K) m=1024;; *M) m=$((1024 * 1024));; *G) m=$((1024 * 1024 * 1024));; esac
  echo $(( ${v%[KMG]} * m ))
}

# guest DOMID IMG RW BS QD [xen-blkbench args] -> "iops=N bps=N"
guest() {
  local domid=$1 img=$2 rw=$3 bs=$4 qd=$5; shift 5
  "$B/xen-blkbench" --sim "$dir" --domid "$domid" --vdev xvda --target "$img" --mode w \
      --rw "$rw" --bs "$bs" --iodepth "$qd" --runtime "$runtime" --quiet "$@" 2>>"$dir/bb.err" |
    awk '/^workload/ { for (i = 2; i <= NF; i++) { split($i, p, "="); w[p[1]] = p[2] } }
         END { el = w["runtime"] + 0; if (el <= 0) el = 1
               printf "iops=%.1f bps=%.0f\n", w["ops"] / el, (w["read-bytes"] + w["write-bytes"]) / el }'
}
val() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "# QoS: a limited guest and an unlimited neighbour on one xen-blkbackd (simulated host),"
echo "# $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs, ${runtime}s per run, median of $reps"
printf '\n%-26s %12s %12s %9s | %14s %14s %9s\n' case limit achieved ratio neighbour-alone neighbour-with ratio
domid=1
# run LABEL UNIT LIMIT_VALUE KEY RW BS QD
run() {
  local label=$1 unit=$2 limit=$3 key=$4 rw=$5 bs=$6 qd=$7
  local -a ach=() alone=() with=()
  for _ in $(seq "$reps"); do
    alone+=("$(val "$unit" "$(guest $domid "$dir/disk2.img" "$rw" "$bs" "$qd")")")
    domid=$((domid + 1))
    guest $domid "$dir/disk1.img" "$rw" "$bs" "$qd" --backend-key "$key=$limit" > "$dir/lim.out" &
    local lp=$!
    with+=("$(val "$unit" "$(guest $((domid + 1)) "$dir/disk2.img" "$rw" "$bs" "$qd")")")
    wait "$lp"
    ach+=("$(val "$unit" "$(cat "$dir/lim.out")")")
    domid=$((domid + 2))
  done
  local lim=$limit
  [ "$unit" = bps ] && lim=$(bytes_of "$limit")
  local a n1 n2
  a=$(printf '%s\n' "${ach[@]}" | median)
  n1=$(printf '%s\n' "${alone[@]}" | median)
  n2=$(printf '%s\n' "${with[@]}" | median)
  printf '%-26s %12s %12.0f %9.3f | %14.0f %14.0f %9.3f\n' "$label" "$lim" "$a" \
         "$(echo "$a / $lim" | bc -l)" "$n1" "$n2" "$(echo "$n2 / $n1" | bc -l)"
}
run "iops randread 4k QD16" iops "$iops_limit" qos-iops randread 4k 16
run "bps read 64k QD8" bps "$bps_limit" qos-bps read 64k 8
echo
echo "# ratio (limited): achieved/limit, target 0.95..1.05 (includes the first burst: RATE/10)"
echo "# ratio (neighbour): its throughput next to the limited guest / alone (2 CPUs shared by"
echo "# both guests and the daemon: the limited guest's own work is the neighbour's cost)"
