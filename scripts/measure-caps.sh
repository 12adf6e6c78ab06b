#!/usr/bin/env bash
# Which capabilities does xen-blkbackd need as root?  Measured on the simulated
# Xen host (xen-blkbackd(8) CONFINEMENT): each case starts the daemon as uid 0
# under `setpriv --bounding-set=-all,+CAPS` (so it runs with exactly CAPS in
# its permitted and effective sets, as systemd's CapabilityBoundingSet=CAPS
# gives a root service), then a simulated guest (with every capability: it is
# not what is measured) attaches a disk and runs verified random I/O, the
# daemon is SIGKILLed under it and started again the same way (reattach from
# the restart state), and it is stopped with SIGTERM (exit status 0 wanted).
# What is root-owned here is what is root-owned in dom0: the state directory
# (made 0700 as RuntimeDirectory= makes it), the image (0600), the simulated
# host's directory and the xenstored socket.
#   usage: scripts/measure-caps.sh [BUILD_DIR]   (as root; default build)
# Prints one line per case: the case, the bounding set, what happened.
set -uo pipefail
B=$(cd "${1:-build}" && pwd)
[ "$(id -u)" = 0 ] || { echo "measure-caps: run as root" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "measure-caps: setpriv (util-linux) missing" >&2; exit 2; }
sim=$(mktemp -d /dev/shm/xbd-caps-XXXXXX)
work=$(mktemp -d /var/tmp/xbd-caps-XXXXXX)
st=/run/xbd-caps-$$
xsd_pid= ; d_pid=
cleanup() {
  [ -n "$d_pid" ] && [ "$d_pid" -gt 1 ] && kill -9 "$d_pid" 2>/dev/null
  [ -n "$xsd_pid" ] && [ "$xsd_pid" -gt 1 ] && kill "$xsd_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$sim" "$st" "$st.pid"
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
export XENSTORED_PATH=$sim/xs.sock
"$B/xen-sim-xenstored" --socket "$XENSTORED_PATH" --pidfile "$sim/xs.pid" 2>"$work/xenstored.log" &
xsd_pid=$!
for _ in $(seq 100); do [ -s "$sim/xs.pid" ] && break; sleep 0.05; done
[ -s "$sim/xs.pid" ] || { echo "measure-caps: xenstored did not start" >&2; exit 1; }
dom=10

# start CAPS ARGS...: the daemon with bounding set CAPS ("" = none); d_pid, or
# d_pid empty and a reason in $why when it did not come up within 5 s.
start() {
  local caps=$1; shift
  local wrap=(setpriv --bounding-set="-all${caps:+,$caps}" --inh-caps=-all --)
  [ "$caps" = ALL ] && wrap=()
  "${wrap[@]}" "$B/xen-blkbackd" --xen="sim:$sim" --state-dir="$st" --control="$st/control.sock" \
      --config=/dev/null --log="file:$work/daemon.log" --log-level=info "$@" &
  d_pid=$!
  why=
  for _ in $(seq 100); do
    if ! kill -0 "$d_pid" 2>/dev/null; then
      wait "$d_pid"; why="exited $? at start-up: $(grep -a 'error\]' "$work/daemon.log" | tail -n 1 | cut -d' ' -f3-)"
      d_pid=; return 1
    fi
    "$B/xen-blkbackctl" -s "$st/control.sock" version >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  why="no control socket within 5 s"; [ "$d_pid" -gt 1 ] && kill -9 "$d_pid"; wait "$d_pid" 2>/dev/null; d_pid=; return 1
}

# case NAME CAPS IMAGE_OWNER ARGS...: one run as described at the top.
case_() {
  local name=$1 caps=$2 owner=$3; shift 3
  local res
  rm -rf "$st"; [ -n "${NOSTATE:-}" ] || mkdir -m 0700 "$st"
  : > "$work/daemon.log"
  local img=$work/img-$dom
  truncate -s 16M "$img"; chmod 0600 "$img"; chown "$owner" "$img"
  if ! start "$caps" "$@"; then
    printf '%-28s %-40s FAIL: %s\n' "$name" "${caps:-(none)}" "$why"; dom=$((dom + 1)); return
  fi
  local eff; eff=$(awk '/^CapEff/ { print $2 }' "/proc/$d_pid/status")
  "$B/xen-blkbench" --sim "$sim" --domid "$dom" --target "$img" --rw randrw --bs-range 512-64k \
      --iodepth 16 --verify --runtime 4 --flush --timeout 20 > "$work/bench-$dom.out" 2>&1 &
  local b_pid=$!
  sleep 1.5
  [ "$d_pid" -gt 1 ] && kill -9 "$d_pid"; wait "$d_pid" 2>/dev/null
  if ! start "$caps" "$@"; then
    wait "$b_pid"
    printf '%-28s %-40s FAIL: restart: %s\n' "$name" "${caps:-(none)}" "$why"; dom=$((dom + 1)); return
  fi
  wait "$b_pid"; local brc=$?
  [ "$d_pid" -gt 1 ] && kill -TERM "$d_pid"; wait "$d_pid"; local drc=$?; d_pid=
  local errs mism verified reatt
  errs=$(awk '$1 == "status" { for (i = 2; i <= NF; i++) if ($i ~ /^error=/) print substr($i, 7) }' "$work/bench-$dom.out")
  mism=$(awk '$1 == "verify" { for (i = 2; i <= NF; i++) if ($i ~ /^mismatches=/) print substr($i, 12) }' "$work/bench-$dom.out")
  verified=$(awk '$1 == "verify" { for (i = 2; i <= NF; i++) if ($i ~ /^sectors=/) print substr($i, 9) }' "$work/bench-$dom.out")
  reatt=$(grep -ac "vbd $dom/[0-9]*: reattached" "$work/daemon.log")
  if [ "$brc" = 0 ] && [ "$drc" = 0 ] && [ "${errs:-x}" = 0 ] && [ "${mism:-x}" = 0 ] && [ "${verified:-0}" -gt 0 ]; then
    res="ok: CapEff $eff, guest verified $verified sectors, 0 errors, reattached $reatt, exit 0"
    local nerr; nerr=$(grep -ac 'error\]' "$work/daemon.log")
    [ "$nerr" = 0 ] || res="$res; but $nerr error line(s): $(grep -a 'error\]' "$work/daemon.log" | head -n 1 | cut -d' ' -f3- | cut -c 1-120)"
  else
    res="FAIL: guest rc $brc errors ${errs:-?} mismatches ${mism:-?}, daemon exit $drc: $(grep -a 'error\]' "$work/daemon.log" | head -n 1 | cut -d' ' -f3- | cut -c 1-160)"
  fi
  printf '%-28s %-40s %s\n' "$name" "${caps:-(none)}" "$res"
  dom=$((dom + 1))
}

# user NAME CAPS: --user=65534 with bounding set CAPS: start-up and the drop
# only (serving as that user needs the guest's files handed to it:
# tests/t_confine.c does that).
user_() {
  local name=$1 caps=$2 res
  rm -rf "$st"; mkdir -m 0700 "$st"
  : > "$work/daemon.log"
  if start "$caps" --seccomp=kill --user=65534; then
    res="ok: $(grep -ao 'running as user.*' "$work/daemon.log" | head -n 1), CapEff $(awk '/^CapEff/ { print $2 }' "/proc/$d_pid/status")"
    [ "$d_pid" -gt 1 ] && kill -TERM "$d_pid"; wait "$d_pid"; res="$res, exit $?"; d_pid=
  else
    res="FAIL: $why"
  fi
  printf '%-28s %-40s %s\n' "$name" "${caps:-(none)}" "$res"
}

printf '%-28s %-40s %s\n' "case" "bounding set (= CapEff)" "result"
case_ "root as started"      ALL                        root --seccomp=kill
case_ "none"                 ""                         root --seccomp=kill
case_ "none, isolation"      ""                         root --seccomp=kill --isolation=domain
case_ "none, metrics :9100"  ""                         root --seccomp=kill --metrics=127.0.0.1:9100
case_ "none, metrics :90"    ""                         root --seccomp=kill --metrics=127.0.0.1:90
case_ "net_bind, metrics :90" "+net_bind_service"       root --seccomp=kill --metrics=127.0.0.1:90
case_ "none, image uid 1000" ""                         1000 --seccomp=kill
case_ "dac_override, uid 1000" "+dac_override"          1000 --seccomp=kill
NOSTATE=1 case_ "none, no state dir"   ""                         root --seccomp=kill --pidfile="$st.pid"
user_ "user, none"           ""
user_ "user, setuid,setgid"  "+setuid,+setgid"
user_ "user, +chown"         "+setuid,+setgid,+chown"
user_ "user, chown,setuid"   "+setuid,+chown"
user_ "user, chown,setgid"   "+setgid,+chown"
# The set of the shipped unit (conf/xen-blkbackd.service CapabilityBoundingSet=).
unit="+dac_override,+chown,+setuid,+setgid,+net_bind_service"
case_ "unit's set, :90, isolation" "$unit"              1000 --seccomp=kill --isolation=domain --metrics=127.0.0.1:90
user_ "unit's set, user"     "$unit"
