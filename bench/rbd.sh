#!/usr/bin/env bash
# The rbd engine against raw fio --ioengine=rbd on the SAME image of a single-node Ceph
# cluster (mon + memstore osd on 127.0.0.1, started here, torn down at exit) in the SAME
# run: 4 KiB randread / randwrite QD32, 1 MiB seq read QD8; medians of 3 runs each,
# raw and ours alternating, and which of them goes first alternating too.  Not a test.  See bench/BENCHMARKING.md.
#   bench/rbd.sh [BUILD_DIR]   env: BENCH_RUNTIME (s, 5), BENCH_RBD_MIB (256), BENCH_RUNS (3)
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
runtime=${BENCH_RUNTIME:-5}
size_mib=${BENCH_RBD_MIB:-256}
runs=${BENCH_RUNS:-3}
for p in ceph-mon ceph-osd ceph rbd fio jq; do
  command -v $p >/dev/null || { echo "# bench/rbd.sh: $p not installed (scripts/deps.sh): skipped"; exit 0; }
done
fio --enghelp=rbd >/dev/null 2>&1 || { echo "# bench/rbd.sh: fio without the rbd engine: skipped"; exit 0; }
dir=$(mktemp -d /dev/shm/xbd-rbd-XXXXXX)
cdir=$(mktemp -d /var/tmp/xbd-ceph-XXXXXX)
. "$(dirname "$0")/lib.sh"
mon_pid= ; osd_pid=
ceph_stop() {
  for p in $osd_pid $mon_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
}
trap 'bench_stop; ceph_stop; rm -rf "$dir" "$cdir"' EXIT

# The cluster: the settings of tests/lib/ceph.c (see docs/storage-notes.md).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fsid=$(cat /proc/sys/kernel/random/uuid)
conf=$cdir/ceph.conf
cat > "$conf" <<EOF
[global]
fsid = $fsid
mon host = 127.0.0.1:$port
mon initial members = a
public network = 127.0.0.1/32
ms bind ipv6 = false
keyring = $cdir/keyring
run dir = $cdir/run
admin socket = $cdir/run/\$name.asok
log file = $cdir/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
paxos propose interval = 0.05
mon data = $cdir/mon
osd data = $cdir/osd
osd objectstore = memstore
memstore device bytes = $(( (size_mib * 3 + 256) * 1024 * 1024 ))
EOF
( cd "$cdir" && mkdir -p run log mon osd &&
  ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null &&
  ceph-authtool keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null &&
  ceph-authtool keyring --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' >/dev/null &&
  monmaptool --create --add a "127.0.0.1:$port" --fsid "$fsid" monmap >/dev/null &&
  ceph-mon -c "$conf" --mkfs -i a --monmap monmap --keyring keyring )
ceph-mon -c "$conf" -i a -f >"$cdir/log/mon.out" 2>&1 & mon_pid=$!
uuid=$(cat /proc/sys/kernel/random/uuid)
timeout 60 ceph -c "$conf" osd new "$uuid" 0 >/dev/null
timeout 60 ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
ceph-osd -c "$conf" -i 0 -f >"$cdir/log/osd.out" 2>&1 & osd_pid=$!
timeout 60 ceph -c "$conf" osd pool create rbd 8 >/dev/null 2>&1
timeout 60 rbd -c "$conf" pool init rbd
timeout 60 rbd -c "$conf" create --size "${size_mib}M" rbd/bench
export CEPH_CONF=$conf
params="rbd:rbd/bench:conf=$conf"

echo "# rbd engine vs raw fio --ioengine=rbd, $(date -u +%FT%TZ), $(uname -r), $(nproc) CPUs;" \
     "rbd/bench (${size_mib} MiB, memstore OSD on 127.0.0.1), ${runtime}s per run, median of $runs"
# Fill the image: reads of never-written objects are answered without data.
fio --name=prep --ioengine=rbd --clientname=admin --pool=rbd --rbdname=bench --rw=write --bs=1M \
    --iodepth=8 --size="${size_mib}M" --output=/dev/null
bench_start

# raw_rbd RW BS QD -> "iops= mbps= cpu_us=" (the whole fio process: librbd's threads too)
raw_rbd() {
  local rw=$1 bs=$2 qd=$3 t0 t1 js=$dir/fio.json
  child_ticks t0
  fio --name=raw --ioengine=rbd --clientname=admin --pool=rbd --rbdname=bench --rw="$rw" --bs="$bs" \
      --iodepth="$qd" --size="${size_mib}M" --runtime="$runtime" --time_based \
      --output-format=json > "$js" 2>/dev/null || true
  child_ticks t1
  jq -r --argjson ticks "$((t1 - t0))" --argjson tck "$tck" '.jobs[0] as $j | ($j.read.total_ios + $j.write.total_ios) as $ios
     | "iops=\($j.read.iops + $j.write.iops | floor) mbps=\(($j.read.bw_bytes + $j.write.bw_bytes) / 1e6 * 10 | floor / 10)"
     + " cpu_us=\(if $ios > 0 then $ticks / $tck / $ios * 1e6 * 100 | floor / 100 else 0 end)"' "$js"
}
printf '\n%-20s %9s %8s %9s | %9s %8s %11s %8s %8s\n' workload raw-IOPS raw-MB/s raw-us/io IOPS MB/s daemon-us/io ours/raw cpu-ratio
domid=1
row() { # label rw bs qd [xen-blkbench args]
  local label=$1 rw=$2 bs=$3 qd=$4; shift 4
  local -a r=() o=()
  # Alternate who goes first: the memstore OSD gets slower with every overwrite
  # (measured: OSD CPU per 4k write 150 -> 570 us over four runs), which would
  # always favour whoever runs first.
  for i in $(seq "$runs"); do
    [ $((i % 2)) = 1 ] && r+=("$(raw_rbd "$rw" "$bs" "$qd")")
    o+=("$(ours $domid "$params" "$rw" "$bs" "$qd" --size "${size_mib}m" "$@")"); domid=$((domid + 1))
    [ $((i % 2)) = 0 ] && r+=("$(raw_rbd "$rw" "$bs" "$qd")")
  done
  # shellcheck disable=SC2046
  set -- $(med_summary r o)
  printf '%-20s %9s %8s %9s | %9s %8s %11s %8s %8s\n' "$label" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8"
}
row "4k randread QD32" randread 4k 32
row "4k randwrite QD32" randwrite 4k 32
row "1m seq read QD8" read 1m 8 --indirect-segs 256
echo
echo "# us/io: CPU time (user+system) per I/O of the whole process, librbd's threads included:"
echo "#        the daemon from /proc/<pid>/stat, raw fio from its exit (cutime+cstime)."
echo "# ours/raw: IOPS ratio; cpu-ratio: daemon us/io / raw fio us/io.  The OSD and the"
echo "# frontend tool share the 2 CPUs with both: see bench/BENCHMARKING.md."
