#!/usr/bin/env bash
# Run one libFuzzer target over its seed corpus for a while.
#   tests/fuzz/run.sh <bin-dir> <target> <seconds> <work-corpus-dir>
# New inputs go to <work-corpus-dir> only (the first corpus libFuzzer is
# given); tests/fuzz/corpus/<target> is read, never written. Crash, leak and
# timeout inputs land in <bin-dir>/../artifacts/<target>/. The exit status
# is libFuzzer's: non-zero on any crash, leak or sanitizer report.
set -euo pipefail
bindir=$1 target=$2 secs=$3 work=$4
top=$(cd "$(dirname "$0")/../.." && pwd)
bin="$bindir/fuzz_$target"
seeds="$top/tests/fuzz/corpus/$target"
art="$bindir/../artifacts/$target"
mkdir -p "$work" "$art"

case "$target" in
  http) maxlen=24576 ;; # past the 16 KiB retained-bytes buffer
  *) maxlen=8192 ;;
esac
opts=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$maxlen"
      -artifact_prefix="$art/" -print_final_stats=1)
[ -f "$top/tests/fuzz/$target.dict" ] && opts+=(-dict="$top/tests/fuzz/$target.dict")

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
echo "== fuzz_$target: ${secs}s, corpus $work (+ seeds $seeds)"
exec "$bin" "${opts[@]}" "$work" "$seeds"
