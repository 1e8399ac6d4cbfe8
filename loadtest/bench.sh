#!/usr/bin/env bash
# The benchmark (see loadtest/bench.py): installs what it needs (the Docker
# engine, gVisor and the images through scripts/setup.sh, Redis, wrk), builds the
# release binaries, measures, and writes BENCHMARKS.md. About 40 minutes on a
# 2-core machine; BENCH_QUICK=1 runs smaller numbers to try it out (and
# BENCH_OUT=path writes the report elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --gvisor
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v wrk >/dev/null || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release -p code-runner --bin code-runner
cargo build --release -p loadtest --bins
exec python3 loadtest/bench.py
