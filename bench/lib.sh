# bench/lib.sh - shared pieces of the benchmark scripts (sourced, not run).
# Needs: B (build dir), dir (scratch dir in tmpfs), runtime (seconds per run).
# Provides: bench_start / bench_stop (test xenstored + daemon on a simulated
# host), raw_fio, ours; results as "key=value ..." lines.

tck=$(getconf CLK_TCK)
xsd_pid= ; d_pid=
bench_stop() {
  [ -n "$d_pid" ] && kill "$d_pid" 2>/dev/null && wait "$d_pid" 2>/dev/null || true
  [ -n "$xsd_pid" ] && kill "$xsd_pid" 2>/dev/null && wait "$xsd_pid" 2>/dev/null || true
  d_pid= ; xsd_pid=
}

# bench_start [daemon args...]
bench_start() {
  export XENSTORED_PATH=$dir/xs.sock
  rm -f "$dir/xs.pid"
  "$B/xen-sim-xenstored" --socket "$XENSTORED_PATH" --pidfile "$dir/xs.pid" 2>"$dir/xsd.log" &
  xsd_pid=$!
  for _ in $(seq 100); do [ -s "$dir/xs.pid" ] && break; sleep 0.05; done
  "$B/xen-blkbackd" --xen="sim:$dir" --control="$dir/ctl" --log="file:$dir/daemon.log" \
      --log-level=warning "$@" &
  d_pid=$!
  for _ in $(seq 100); do "$B/xen-blkbackctl" -s "$dir/ctl" version >/dev/null 2>&1 && break; sleep 0.05; done
}

# cpu_ticks PID: CPU ticks (user+system) of the daemon, with those of its reaped children
# (cutime + cstime): the isolation workers (--isolation=domain), ended and reaped when
# their domain's last disk detaches, before xen-blkbench returns.
cpu_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }

# child_ticks VAR: CPU ticks (user+system) of this shell's waited-for children
# (cutime + cstime), into VAR; not in a $(...) subshell: it would read its own.
child_ticks() { local -a a; read -r -a a < "/proc/$BASHPID/stat"; printf -v "$1" '%d' $((a[15] + a[16])); }

# raw_fio TARGET RW BS QD [fio args...] -> "iops= mbps= p50= p99= cpu_us= "
# TARGET: a file, "null", or an NBD URI (fio --ioengine=nbd --uri=...).
# cpu_us is the whole fio process's CPU per I/O, its io_uring worker threads
# (iou-wrk) included, as the daemon's is: fio's own usr_cpu/sys_cpu counts only
# the job thread (getrusage RUSAGE_THREAD), and on tmpfs, where io_uring hands
# every O_DIRECT read/write to an io-wq worker, that leaves out half the cost.
# It also includes fio's start-up (tens of ms), as the daemon's includes attach.
raw_fio() {
  local target=$1 rw=$2 bs=$3 qd=$4; shift 4
  local eng=io_uring direct=1 t0 t1 js=$dir/fio.json
  local -a where=(--filename="$target")
  case "$target" in
    null) eng=null; direct=0; where=(--filename="$dir/null.dummy");;
    nbd*://*) eng=nbd; direct=0; where=(--uri="$target");;     # fio's libnbd engine (after --ioengine)
  esac
  child_ticks t0
  fio --name=raw --ioengine=$eng "${where[@]}" --size="${size_mib}M" --direct=$direct \
      --rw="$rw" --bs="$bs" --iodepth="$qd" --runtime="$runtime" --time_based \
      --output-format=json "$@" > "$js" 2>/dev/null || true
  child_ticks t1
  sed -i -n '/^{/,$p' "$js"     # the nbd engine prints "fio: connected to NBD server" first
  jq -r --argjson ticks "$((t1 - t0))" --argjson tck "$tck" '.jobs[0] as $j | ($j.read.total_ios + $j.write.total_ios) as $ios
         | (if $j.read.total_ios > 0 then $j.read else $j.write end) as $d
         | "iops=\($j.read.iops + $j.write.iops | floor) mbps=\(($j.read.bw_bytes + $j.write.bw_bytes) / 1e6 * 10 | floor / 10)"
         + " p50=\($d.clat_ns.percentile["50.000000"] / 1000 | floor) p99=\($d.clat_ns.percentile["99.000000"] / 1000 | floor)"
         + " cpu_us=\(if $ios > 0 then $ticks / $tck / $ios * 1e6 * 100 | floor / 100 else 0 end)"' "$js"
}

# ours DOMID TARGET RW BS QD [xen-blkbench args...]
#   -> "iops= mbps= p50= p99= cpu_us= map= copy= notify= submit= " (per I/O)
ours() {
  local domid=$1 target=$2 rw=$3 bs=$4 qd=$5; shift 5
  local t0 t1 out st=$dir/stats.$domid.json
  rm -f "$st"
  t0=$(cpu_ticks "$d_pid")
  out=$("$B/xen-blkbench" --sim "$dir" --domid "$domid" --vdev xvda --target "$target" --mode w \
        --rw "$rw" --bs "$bs" --iodepth "$qd" --runtime "$runtime" --quiet \
        --before-detach "'$B/xen-blkbackctl' -s '$dir/ctl' --json stats $domid 51712 > '$st'" \
        "$@" 2>"$dir/bb.err") || { cat "$dir/bb.err" >&2; echo "$out" >&2; return 1; }
  t1=$(cpu_ticks "$d_pid")
  local ctr
  ctr=$(jq -r '.devices[0].stats | "\(.gnt_map) \(.gnt_unmap) \(.gnt_copy) \(.notify) \(.submits)"' "$st" 2>/dev/null || echo "0 0 0 0 0")
  echo "$out" | awk -v t="$((t1 - t0))" -v tck="$tck" -v ctr="$ctr" '
    function kv(line, arr,   i, p) { for (i = 2; i <= NF; i++) { split($i, p, "="); arr[p[1]] = p[2] } }
    /^workload/ { kv($0, w) } /^throughput/ { kv($0, th) } /^latency-us/ { kv($0, lat) }
    END { split(ctr, c, " "); ops = w["ops"] + 0; if (!ops) ops = 1
          printf "iops=%d mbps=%.1f p50=%d p99=%d cpu_us=%.2f map=%.3f copy=%.3f notify=%.3f submit=%.3f\n",
                 th["iops"], th["MB/s"], lat["p50"], lat["p99"], t / tck / ops * 1e6,
                 (c[1] + c[2]) / ops, c[3] / ops, c[4] / ops, c[5] / ops }'
}

# run_pairs N TARGET RW BS QD [xen-blkbench args...]: N alternating runs, raw fio then
# the daemon, on TARGET; their result lines are appended to the caller's arrays r and o
# (declared local there: bash's dynamic scope), and domid moves on by one per daemon run.
run_pairs() {
  local n=$1 target=$2 rw=$3 bs=$4 qd=$5; shift 5
  for _ in $(seq "$n"); do
    r+=("$(raw_fio "$target" "$rw" "$bs" "$qd")")
    o+=("$(ours $domid "$target" "$rw" "$bs" "$qd" "$@")"); domid=$((domid + 1))
  done
}

# median < numbers (one a line) -> the middle one (of an even count, the lower middle)
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'; }
# med KEY "k=v ..." "k=v ..." ... -> the median of KEY's values over the result lines
med() { local k=$1; shift; for x in "$@"; do field "$k" "$x"; done | median; }
# med_summary RAW OURS: names of two arrays of result lines (raw fio, xen-blkbench) ->
# "raw-IOPS raw-MB/s raw-us/io IOPS MB/s us/io ours/raw cpu-ours/raw", medians
med_summary() {
  local -n _r=$1 _o=$2
  local ri rm rc oi om oc
  ri=$(med iops "${_r[@]}"); rm=$(med mbps "${_r[@]}"); rc=$(med cpu_us "${_r[@]}")
  oi=$(med iops "${_o[@]}"); om=$(med mbps "${_o[@]}"); oc=$(med cpu_us "${_o[@]}")
  echo "$ri $rm $rc $oi $om $oc" \
    "$(awk -v a="$oi" -v b="$ri" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
    "$(awk -v a="$oc" -v b="$rc" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
}

# field KEY "k=v k=v ..." -> v
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# pair_ratios KEY RAW OURS: names of two arrays of result lines, element i of
# each measured back to back -> the per-pair ratios ours/raw of KEY, one a line
pair_ratios() {
  local _k=$1 i
  local -n _qr=$2 _qo=$3
  for i in "${!_qr[@]}"; do
    awk -v a="$(field "$_k" "${_qo[$i]}")" -v b="$(field "$_k" "${_qr[$i]}")" 'BEGIN { printf "%.3f\n", b ? a / b : 0 }'
  done
}

# ratio_spread RAW OURS: names of two arrays of result lines measured in pairs ->
# "median least greatest" of the per-pair IOPS ratios ours/raw
ratio_spread() {
  local rr; rr=$(pair_ratios iops "$1" "$2")
  printf '%.2f %.2f %.2f\n' "$(echo "$rr" | median)" "$(echo "$rr" | sort -g | head -1)" \
    "$(echo "$rr" | sort -g | tail -1)"
}

# pair_summary RAW OURS: names of two arrays of result lines, element i of each
# measured back to back (interleaved runs) -> "raw-IOPS raw-us/io IOPS us/io
# ratio ratio-min ratio-max cpu-ratio": medians of IOPS and CPU per I/O, the
# median, least and greatest of the per-pair ratios ours/raw (IOPS) and the
# median per-pair CPU ratio.  A pair's ratio is measured under the same load,
# so it drifts less than either side on a shared machine.
pair_summary() {
  local -n _pr=$1 _po=$2
  printf '%s %s %s %s %s %.2f\n' \
    "$(med iops "${_pr[@]}")" "$(med cpu_us "${_pr[@]}")" "$(med iops "${_po[@]}")" "$(med cpu_us "${_po[@]}")" \
    "$(ratio_spread "$1" "$2")" "$(pair_ratios cpu_us "$1" "$2" | median)"
}

# med_line LINES...: result lines ("k=v ...") -> one line of the same keys (those of the
# first line), each the median over the lines.
med_line() {
  local k out=""
  for k in $(echo "$1" | tr ' ' '\n' | sed -n 's/=.*//p'); do out+="$k=$(med "$k" "$@") "; done
  echo "${out% }"
}
