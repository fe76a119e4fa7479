"""Lock acquire+release uncontended and contended by 2 processes, a hand-off ping-pong
through two Locks; Value += 1 under get_lock()."""

import time
from multiprocessing import get_context

from bench_common import ping_pong

CTX = get_context("fork")


def lock_uncontended(n):
    lock = CTX.Lock()
    start = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return n, time.perf_counter() - start


def _processes(count, target, args, n):
    """Starts `count` children running target(*args, go, n) at once; returns the seconds
    until all end."""
    go = CTX.Event()
    children = [CTX.Process(target=target, args=(*args, go, n)) for _ in range(count)]
    for child in children:
        child.start()
    try:
        start = time.perf_counter()
        go.set()
        for child in children:
            child.join()
            if child.exitcode != 0:
                raise RuntimeError(f"child exit code {child.exitcode}")
        return time.perf_counter() - start
    finally:
        for child in children:
            child.kill()
            child.join()


def _two_processes(target, args, n):
    """Starts 2 children running target(*args, go, n) at once; returns the seconds until both end."""
    return _processes(2, target, args, n)


def _lock_loop(lock, counter, go, n):
    go.wait()
    for _ in range(n):
        with lock:
            counter.value += 1


def lock_contended(n):
    lock = CTX.Lock()
    counter = CTX.Value("q", 0, lock=False)
    seconds = _two_processes(_lock_loop, (lock, counter), n)
    if counter.value != 2 * n:
        raise RuntimeError(f"lock let updates through: {counter.value} != {2 * n}")
    return 2 * n, seconds


def _answer(ping, pong, count):
    for _ in range(count):
        ping.acquire()
        pong.release()


def lock_round_trip(n, warmup):
    """Two Locks used as binary semaphores (any process may release a Lock): this process
    releases ping, the child takes it and releases pong, this process takes pong."""
    ping, pong = CTX.Lock(), CTX.Lock()
    ping.acquire()
    pong.acquire()

    def one(_):
        ping.release()
        pong.acquire()

    return ping_pong(CTX, _answer, (ping, pong), n, warmup, one)


def _increment(value, go, n):
    go.wait()
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def value_increment(n, processes=2):
    """`processes` processes each add 1 to one Value n times under its lock."""
    value = CTX.Value("q", 0)
    seconds = _processes(processes, _increment, (value,), n)
    if value.value != processes * n:
        raise RuntimeError(f"lost increments: {value.value} != {processes * n}")
    return processes * n, seconds
