"""Python's multiprocessing locks, measured like benches/sync.rs.

Run: python3 benches/python/sync_bench.py          (unpinned)
     taskset -c 0 python3 benches/python/sync_bench.py   (both processes on one CPU)
Prints: uncontended Lock acquire+release (ns a pair), and a cross-process hand-off
ping-pong through two Locks used as binary semaphores (us a round trip).
"""
import multiprocessing as mp
import time


def uncontended(n=2_000_000):
    lock = mp.Lock()
    acquire, release = lock.acquire, lock.release
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            acquire()
            release()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e9


def _child(ping, pong, n):
    for _ in range(n):
        ping.acquire()
        pong.release()


def ping_pong(n=20_000):
    ping, pong = mp.Lock(), mp.Lock()
    ping.acquire()
    pong.acquire()
    p = mp.get_context("fork").Process(target=_child, args=(ping, pong, n))
    p.start()
    t = time.perf_counter()
    for _ in range(n):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - t
    p.join()
    return elapsed / n * 1e6


if __name__ == "__main__":
    print(f"python Lock uncontended acquire+release: {uncontended():.1f} ns")
    print(f"python Lock ping-pong round trip: {ping_pong():.2f} us")
