#!/usr/bin/env bash
# scripts/vm/guest-tests.sh [--timeout SEC] BINARY... [-- TEST-ARGS...]: runs inside
# a guest (scripts/vm-test boots it). Runs each cargo test binary in turn, with
# TEST-ARGS (a name filter, --skip, ...), passes its output through, then prints
# one summary line per binary. Exit status: the number of binaries that failed
# (0: all passed).
set -uo pipefail
TMO=900
BINS=() ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) TMO=$2; shift 2 ;;
    --) shift; ARGS=("$@"); break ;;
    *) BINS+=("$1"); shift ;;
  esac
done
echo "guest: Linux $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1024)" MiB"}' /proc/meminfo)," \
  "RTAP_TEST_SCALE=${RTAP_TEST_SCALE:-1}"
SUMMARY=()
failed=0
for bin in "${BINS[@]}"; do
  name=$(basename "$bin" | sed 's/-[0-9a-f]\{16\}$//')
  echo "guest: ---- $name"
  start=$SECONDS
  timeout -k 10 "$TMO" "$bin" "${ARGS[@]}" 2>&1 | tee /tmp/guest-test.out
  rc=${PIPESTATUS[0]}
  result=$(grep -E '^test result:' /tmp/guest-test.out | tail -1 | sed 's/^test result: //; s/; finished in.*//')
  [ $rc -eq 124 ] && result="timed out after ${TMO}s"
  if [ $rc -eq 0 ]; then status=ok; else status="FAILED (exit $rc)"; failed=$((failed + 1)); fi
  SUMMARY+=("$(printf '%-14s %-16s %4ds  %s' "$name" "$status" $((SECONDS - start)) "$result")")
done
echo "guest: ---- summary, Linux $(uname -r)"
printf 'guest: %s\n' "${SUMMARY[@]}"
exit $failed
