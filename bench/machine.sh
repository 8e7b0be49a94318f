#!/usr/bin/env bash
# The machine a benchmark ran on, as JSON on stdout: date, CPU model, cores,
# kernel, memory, load average, and a calibration — the cost of a loopback
# write+read pair measured by privydrop-calibrate — so figures from two
# machines can be compared as ratios (docs/benchmarks.md, "Machine header").
#   bench/machine.sh [round-trips]     (100000; PD_BIN_DIR as bench/run.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${PD_BIN_DIR:-$here/../build/bin}
n=${1:-100000}
[ -x "$BIN/privydrop-calibrate" ] || { echo "machine: $BIN/privydrop-calibrate missing (make calibrate)" >&2; exit 1; }
cal=$("$BIN/privydrop-calibrate" "$n")
cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[ -n "$cpu" ] || cpu=$(uname -m)
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
load=$(cut -d' ' -f1-3 /proc/loadavg)
# JSON strings: the CPU model and kernel come from the system; quote them
# through node rather than trusting them to hold no quote or backslash.
node -e '
const [cpu, kernel, cores, memKb, load, cal] = process.argv.slice(1);
process.stdout.write(JSON.stringify({
  date: new Date().toISOString(), cpu, kernel, cores: Number(cores),
  mem_gib: Math.round(Number(memKb) / 1048576 * 10) / 10, loadavg: load,
  calibration: JSON.parse(cal),
}) + "\n");' "$cpu" "$(uname -sr)" "$(nproc)" "$mem_kb" "$load" "$cal"
