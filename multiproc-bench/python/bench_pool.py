"""Pool of 2 workers: map and apply_async of a trivial function, and CPU-bound tasks."""

import time
from multiprocessing import get_context

CTX = get_context("fork")


def _square(x):
    return x * x


def _with_pool(body):
    pool = CTX.Pool(2)
    try:
        pool.map(_square, range(4))  # workers are up before the clock starts
        return body(pool)
    finally:
        pool.terminate()
        pool.join()


def map_trivial(n, chunksize=None):
    def body(pool):
        start = time.perf_counter()
        out = pool.map(_square, range(n), chunksize)
        seconds = time.perf_counter() - start
        if sum(out) != sum(x * x for x in range(n)):
            raise RuntimeError("wrong map results")
        return n, seconds

    return _with_pool(body)


def apply_async_trivial(n):
    def body(pool):
        start = time.perf_counter()
        pending = [pool.apply_async(_square, (i,)) for i in range(n)]
        out = [r.get() for r in pending]
        seconds = time.perf_counter() - start
        if out != [x * x for x in range(n)]:
            raise RuntimeError("wrong apply_async results")
        return n, seconds

    return _with_pool(body)


def _spin_1ms(x):
    # 1 ms of this thread's CPU time, as the Rust rows spin (not wall time).
    end = time.thread_time() + 0.001
    while time.thread_time() < end:
        x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
    return x


def cpu_1ms(n):
    def body(pool):
        start = time.perf_counter()
        out = pool.map(_spin_1ms, range(n), 1)
        seconds = time.perf_counter() - start
        if len(out) != n:
            raise RuntimeError("wrong cpu_1ms results")
        return n, seconds

    return _with_pool(body)
