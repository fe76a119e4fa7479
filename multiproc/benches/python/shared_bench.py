"""Python's multiprocessing.Value increments, measured like benches/shared.rs.

Run: python3 benches/python/shared_bench.py
Prints the time for 2 processes x 100,000 increments of one shared Value under
get_lock() (Python has no lock-free atomic add, so this is also the baseline for
fetch_add), from start to both joined; the best of 3 runs.
"""
import multiprocessing as mp
import time


def _inc(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def two_processes(n=100_000):
    ctx = mp.get_context("fork")
    v = ctx.Value("Q", 0)
    t = time.perf_counter()
    ps = [ctx.Process(target=_inc, args=(v, n)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    elapsed = time.perf_counter() - t
    assert v.value == 2 * n, v.value
    return elapsed


if __name__ == "__main__":
    best = min(two_processes() for _ in range(3))
    print(f"python Value+get_lock 2 processes x 100k increments: {best * 1e3:.1f} ms")
