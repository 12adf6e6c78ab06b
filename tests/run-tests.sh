#!/usr/bin/env bash
# Run every test program of a build: exit 0 = pass, 77 = skip, else fail.
# Per-test timeout TEST_TIMEOUT (seconds, default 180).  Ends with the summary
# line "N passed, N failed, N skipped".  Usage: tests/run-tests.sh BUILD_DIR [name...]
set -u
build=${1:?build dir}; shift
timeout_s=${TEST_TIMEOUT:-180}
logdir=$build/test-logs
mkdir -p "$logdir"
export XBD_BUILD=$(cd "$build" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0 fail=0 skip=0 failed=()
if [ $# -gt 0 ]; then tests=("$@"); else tests=("$build"/tests/t_*); fi
for t in "${tests[@]}"; do
  [ -x "$t" ] || t=$build/tests/$t
  [ -x "$t" ] || continue
  case "$t" in *.o|*.d) continue;; esac
  name=$(basename "$t")
  start=$(date +%s.%N)
  timeout -k 10 "$timeout_s" "$t" >"$logdir/$name.log" 2>&1
  rc=$?
  dur=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
  case $rc in
    0)  pass=$((pass+1)); echo "PASS: $name (${dur}s)";;
    77) skip=$((skip+1)); echo "SKIP: $name ($(tail -n1 "$logdir/$name.log"))";;
    124|137) fail=$((fail+1)); failed+=("$name"); echo "FAIL: $name (timeout ${timeout_s}s)";;
    *)  fail=$((fail+1)); failed+=("$name"); echo "FAIL: $name (exit $rc)";;
  esac
done
for n in "${failed[@]}"; do
  echo "---- $n: last lines of $logdir/$n.log ----"; tail -n 40 "$logdir/$n.log"
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
