"""Runs multiproc-bench's Python peer scenarios.

Reads one JSON request per line on stdin, e.g. {"scenario": "pipe_rt", "n": 1000, "size": 8},
and prints one JSON line per request: {"ops": N, "seconds": T} timed inside the scenario
(interpreter start-up and set-up excluded), or {"error": "..."}. {"scenario": "exit"} ends it.
Run by hand: `echo '{"scenario": "pipe_rt", "n": 1000, "size": 8}' | python3 driver.py`.
"""

import json
import sys
import traceback

import bench_listener
import bench_manager
import bench_pipe
import bench_pool
import bench_process
import bench_queue
import bench_sync

SCENARIOS = {
    "pipe_rt": bench_pipe.round_trip,
    "pipe_throughput": bench_pipe.throughput,
    "queue_small": bench_queue.small,
    "queue_big": bench_queue.big,
    "queue_scale": bench_queue.scale,
    "queue_rt": bench_queue.round_trip,
    "lock_uncontended": bench_sync.lock_uncontended,
    "lock_contended": bench_sync.lock_contended,
    "lock_rt": bench_sync.lock_round_trip,
    "value_increment": bench_sync.value_increment,
    "pool_map": bench_pool.map_trivial,
    "pool_apply_async": bench_pool.apply_async_trivial,
    "pool_cpu_1ms": bench_pool.cpu_1ms,
    "process_start_join": bench_process.start_join,
    "manager_dict": bench_manager.dict_set,
    "manager_dict_child": bench_manager.dict_child,
    "listener_rt": bench_listener.round_trip,
}


def stop_helpers():
    """Stops and reaps the forkserver and the resource tracker. Left to exit on their own
    once this process is gone, they would be orphans of an init that may never reap them
    (in containers, pid 1 is often not an init). `_stop` is private, hence the care."""
    from multiprocessing import forkserver, resource_tracker

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        try:
            helper._stop()
        except Exception:
            pass


def main():
    for line in sys.stdin:
        request = json.loads(line)
        name = request.pop("scenario")
        if name == "exit":
            break
        try:
            ops, seconds = SCENARIOS[name](**request)
            reply = {"ops": ops, "seconds": seconds}
        except Exception as e:  # reported to the bench, which marks the row failed
            traceback.print_exc()
            reply = {"error": f"{name}: {type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_helpers()
