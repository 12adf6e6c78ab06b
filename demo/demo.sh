#!/usr/bin/env bash
# make demo: xen-blkbackd serving a real ext4 image to a simulated guest.
#  1. start the test xenstored and the daemon on a simulated Xen host
#  2. build an ext4 image from a directory of files (mkfs.ext4 -d) + a scratch area
#  3. attach it as xvda of simulated guest 1; while attached, the stock xenstore-ls
#     shows the vbd tree
#  4. read the whole disk through the backend: sha256 must equal the image file's
#  5. verified random read/write workload (mixed sizes, QD 32) on the scratch area,
#     FLUSH, DISCARD of a range shown as a hole (SEEK_HOLE)
#  6. meanwhile the daemon is killed with SIGKILL and started again: the guest sees a
#     pause (its longest request), no error; the new daemon re-issues what was in flight
#  7. the report, the daemon's counters, detach, clean teardown; fsck of the image
set -euo pipefail
B=${1:-build}
B=$(cd "$B" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: FAILED: $*" >&2; exit 1; }

sim=$(mktemp -d /dev/shm/xbd-demo-XXXXXX)
work=$top/build/demo
rm -rf "$work"; mkdir -p "$work"
xsd_pid= ; d_pid=
cleanup() {
  [ -n "$d_pid" ] && kill "$d_pid" 2>/dev/null && wait "$d_pid" 2>/dev/null || true
  [ -n "$xsd_pid" ] && kill "$xsd_pid" 2>/dev/null && wait "$xsd_pid" 2>/dev/null || true
  rm -rf "$sim"
}
trap cleanup EXIT

say "simulated Xen host in $sim"
export XENSTORED_PATH=$sim/xs.sock
"$B/xen-sim-xenstored" --socket "$XENSTORED_PATH" --pidfile "$sim/xs.pid" 2>"$work/xenstored.log" &
xsd_pid=$!
for _ in $(seq 100); do [ -s "$sim/xs.pid" ] && break; sleep 0.05; done
[ -s "$sim/xs.pid" ] || die "xenstored did not start"
echo "xenstored: pid $xsd_pid, socket $XENSTORED_PATH ($(xenstore-read /local/domain/0/name))"

ctl=$sim/control.sock
# Confined as in xen-blkbackd(8) CONFINEMENT: every thread under its seccomp
# list; a syscall outside one kills the daemon (DEMO_SECCOMP=off|log|trap|kill).
seccomp=${DEMO_SECCOMP:-kill}
start_daemon() {
  "$B/xen-blkbackd" --xen="sim:$sim" --control="$ctl" --log="file:$work/daemon.log" --log-level=info \
      --seccomp="$seccomp" &
  d_pid=$!
  for _ in $(seq 100); do "$B/xen-blkbackctl" -s "$ctl" version >/dev/null 2>&1 && break; sleep 0.05; done
}
start_daemon
echo "xen-blkbackd: pid $d_pid, control socket $ctl, log $work/daemon.log, --seccomp=$seccomp"

say "building an ext4 image from a directory of files"
tree=$work/tree; mkdir -p "$tree"
cp -r "$top/src" "$top/include" "$top/man" "$tree/" 2>/dev/null || true
cp -r /usr/share/common-licenses "$tree/licenses" 2>/dev/null || true
head -c 3M /dev/urandom > "$tree/random.bin"
img=$work/xvda.img
fs_mib=48; disk_mib=96
mkfs.ext4 -q -F -L demo -d "$tree" "$img" ${fs_mib}M
truncate -s ${disk_mib}M "$img"          # second half: scratch area for the workload
echo "$(find "$tree" -type f | wc -l) files, filesystem ${fs_mib} MiB in a ${disk_mib} MiB disk image: $img"
img_sha=$(sha256sum "$img" | cut -d' ' -f1)
echo "sha256 of the image file: $img_sha"

say "attaching it as xvda of guest 1; stock xenstore-ls -f while it is connected"
bench_out=$work/bench.out
"$B/xen-blkbench" --sim "$sim" --domid 1 --vdev xvda --target "$img" --mode w \
    --sha256 \
    --rw randrw --rwmixread 50 --bs-range 512-44k --iodepth 32 --verify \
    --offset $((fs_mib << 20)) --length $(((disk_mib - fs_mib) << 20)) --runtime 5 \
    --flush --discard $(((disk_mib - 8) << 20)):$((4 << 20)) \
    --before-detach "echo '== daemon counters while xvda is connected (xen-blkbackctl stats)'; '$B/xen-blkbackctl' -s '$ctl' stats" \
    > "$bench_out" 2>&1 &
b_pid=$!
be=/local/domain/0/backend/vbd/1/51712
for _ in $(seq 200); do [ "$(xenstore-read $be/state 2>/dev/null)" = 4 ] && break; sleep 0.05; done
xenstore-ls -f /local/domain/0/backend/vbd /local/domain/1/device/vbd 2>/dev/null | sed 's/^/  /' || xenstore-ls -f | grep -E 'vbd' | sed 's/^/  /'

say "crash under the running guest: kill -9 of the daemon, a new one 0.5 s later"
sleep 2
old_pid=$d_pid
kill -KILL "$d_pid"; wait "$d_pid" 2>/dev/null || true; d_pid=
echo "killed xen-blkbackd pid $old_pid with requests in flight"
sleep 0.5
start_daemon
echo "started xen-blkbackd pid $d_pid:"
grep -a "re-issuing\|reattached" "$work/daemon.log" | sed 's/^/  /'
n=0; on=0; q=0
for st in /proc/"$d_pid"/task/*/status; do
  n=$((n + 1)); grep -q '^Seccomp:[[:space:]]*2' "$st" 2>/dev/null && on=$((on + 1))
  grep -q '^Name:[[:space:]]*xbd-q' "$st" 2>/dev/null && q=$((q + 1))
done
echo "confinement: $on of $n threads of the daemon ($q queue threads) under a seccomp filter (Seccomp: 2), --seccomp=$seccomp"
[ "$seccomp" = off ] || [ "$on" -eq "$n" ] || die "a thread of the daemon is not confined"
wait $b_pid || { cat "$bench_out"; die "xen-blkbench failed"; }
cat "$bench_out"
grep -q '^result ok' "$bench_out" || die "the guest saw an error across the restart"
echo "OK: the guest finished its verified workload across the crash; its longest request took $(sed -n 's/^latency-us .*max=\([0-9]*\).*/\1/p' "$bench_out" | head -1) us (the pause)"

say "checks"
got=$(sed -n 's/^sha256 \([0-9a-f]*\).*/\1/p' "$bench_out" | head -1)
[ "$got" = "$img_sha" ] || die "sha256 through the backend ($got) != image file ($img_sha)"
echo "OK: sha256 read through the backend equals the image file's"
perl -e '
  open(my $f, "<", $ARGV[0]) or die; my ($off, $len) = @ARGV[1,2];
  my $h = sysseek($f, $off, 4);   # SEEK_HOLE
  die "no hole at $off\n" unless defined $h && $h == $off;
  my $d = sysseek($f, $off, 3);   # SEEK_DATA
  die "data inside the discarded range\n" if defined $d && $d < $off + $len;
  printf "OK: SEEK_HOLE: bytes %d..%d of the image are a hole after DISCARD\n", $off, $off + $len;
' "$img" $(((disk_mib - 8) << 20)) $((4 << 20)) || die "discarded range is not a hole"
e2fsck -fn "$img" >/dev/null 2>&1 && echo "OK: the ext4 filesystem is clean (e2fsck -fn)" || die "e2fsck found errors"

say "after detach"
"$B/xen-blkbackctl" -s "$ctl" list
[ "$(xenstore-read $be/state 2>/dev/null || echo gone)" = gone ] || die "backend directory left behind"
echo "OK: backend directory removed by the toolstack after Closed; the daemon holds no device"

say "teardown"
kill -TERM "$d_pid"; wait "$d_pid"; rc=$?; d_pid=
[ $rc -eq 0 ] || die "daemon exit status $rc"
echo "daemon exited 0 after SIGTERM"
say "demo passed"
