#!/usr/bin/env bash
# make bench: xen-blkbackd through the userspace frontend (simulated Xen host) against
# raw fio on the SAME file in the SAME run.  Not a test: it prints figures, it asserts
# nothing about speed.  See bench/BENCHMARKING.md for the pitfalls.
#   bench/bench.sh [BUILD_DIR]      env: BENCH_RUNTIME (s, default 5), BENCH_SIZE_MIB (1024)
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-5}
size_mib=${BENCH_SIZE_MIB:-1024}
tck=$(getconf CLK_TCK)
dir=$(mktemp -d /dev/shm/xbd-bench-XXXXXX)
img=$dir/disk.img
xsd_pid= ; d_pid=
cleanup() {
  [ -n "$d_pid" ] && kill "$d_pid" 2>/dev/null && wait "$d_pid" 2>/dev/null || true
  [ -n "$xsd_pid" ] && kill "$xsd_pid" 2>/dev/null && wait "$xsd_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# cpu seconds (user+system) of a pid from /proc/<pid>/stat fields 14 and 15
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "# xen-blkbackd benchmark $(date -u +%FT%TZ) on $(uname -r), $(nproc) CPUs; file $img (${size_mib} MiB, tmpfs), ${runtime}s per run"
fio --name=prep --filename="$img" --size=${size_mib}M --rw=write --bs=1M --ioengine=psync \
    --output=/dev/null
export XENSTORED_PATH=$dir/xs.sock
"$B/xen-sim-xenstored" --socket "$XENSTORED_PATH" --pidfile "$dir/xs.pid" 2>"$dir/xsd.log" &
xsd_pid=$!
for _ in $(seq 100); do [ -s "$dir/xs.pid" ] && break; sleep 0.05; done
"$B/xen-blkbackd" --xen="sim:$dir" --control="$dir/ctl" --log="file:$dir/daemon.log" --log-level=warning \
    ${BENCH_DAEMON_ARGS:-} &
d_pid=$!
for _ in $(seq 100); do "$B/xen-blkbackctl" -s "$dir/ctl" version >/dev/null 2>&1 && break; sleep 0.05; done

# raw fio: prints "iops mbps cpu_us_per_io"
raw_fio() { # rw bs qd
  fio --name=raw --filename="$img" --size=${size_mib}M --ioengine=io_uring --direct=1 \
      --rw="$1" --bs="$2" --iodepth="$3" --runtime="$runtime" --time_based \
      --output-format=terse --terse-version=3 2>/dev/null |
  awk -F';' '{ iops=$8; kbs=$7; rt=$9/1000; cpu=($88+$89)/100*rt; ios=iops*rt;
               printf "%.0f %.1f %.2f\n", iops, kbs*1024/1e6, (ios ? cpu/ios*1e6 : 0) }'
}

# ours: prints "iops mbps daemon_cpu_us_per_io"
domid=1
ours() { # rw bs qd [extra xen-blkbench args]
  local rw=$1 bs=$2 qd=$3; shift 3
  local t0 out
  t0=$(cpu_ticks "$d_pid")
  out=$("$B/xen-blkbench" --sim "$dir" --domid $domid --vdev xvda --target "$img" --mode w \
        --rw "$rw" --bs "$bs" --iodepth "$qd" --runtime "$runtime" "$@" 2>"$dir/bb.err") || {
    cat "$dir/bb.err" >&2; echo "$out" >&2; return 1; }
  local t1; t1=$(cpu_ticks "$d_pid")
  domid=$((domid + 1))
  echo "$out" | awk -v t="$((t1 - t0))" -v tck="$tck" '
    /^workload/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); w[kv[1]] = kv[2] } }
    /^throughput/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); th[kv[1]] = kv[2] } }
    END { ops = w["ops"]; printf "%.0f %.1f %.2f\n", th["iops"], th["MB/s"], (ops ? t / tck / ops * 1e6 : 0) }'
}

printf '\n%-34s %10s %9s %12s %10s %9s %12s %8s\n' workload raw-IOPS raw-MB/s raw-cpu-us/io IOPS MB/s daemon-us/io ours/raw
row() { # label rw bs qd [extra]
  local label=$1 rw=$2 bs=$3 qd=$4; shift 4
  read -r ri rm rc < <(raw_fio "$rw" "$bs" "$qd")
  read -r oi om oc < <(ours "$rw" "$bs" "$qd" "$@")
  printf '%-34s %10s %9s %12s %10s %9s %12s %8s\n' "$label" "$ri" "$rm" "$rc" "$oi" "$om" "$oc" \
    "$(awk -v a="$oi" -v b="$ri" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
}
row "4k randread QD32" randread 4k 32
row "44k (11 seg) seq read QD8" read 44k 8 --indirect-segs 0
echo
echo "# daemon-us/io: the daemon's user+system CPU time (from /proc) per I/O; raw-cpu-us/io: fio's own."
echo "# The frontend (xen-blkbench) runs on the same $(nproc) CPUs as the daemon: see bench/BENCHMARKING.md."
