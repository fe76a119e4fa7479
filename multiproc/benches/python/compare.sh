#!/bin/sh
# Runs Python's figures and ours in one go, unpinned and with both processes on CPU 0.
# Run from multiproc/: sh benches/python/compare.sh
set -e
B="--warm-up-time 1 --measurement-time 2"
echo "== unpinned"
python3 benches/python/sync_bench.py
python3 benches/python/shared_bench.py
cargo bench --bench sync -- $B 2>/dev/null | grep -E '^[a-z_/]+|time:'
cargo bench --bench shared -- $B 2>/dev/null | grep -E '^[a-z_/0-9]+|time:'
echo "== both processes on CPU 0 (taskset -c 0)"
taskset -c 0 python3 benches/python/sync_bench.py
taskset -c 0 cargo bench --bench sync -- $B handoff 2>/dev/null | grep -E '^[a-z_/]+|time:'
