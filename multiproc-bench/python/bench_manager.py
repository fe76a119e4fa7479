"""Manager().dict(): item assignments through the proxy, from the parent and from a child."""

import time
from multiprocessing import get_context

CTX = get_context("fork")
KEYS = 64


def dict_set(n):
    with CTX.Manager() as manager:
        shared = manager.dict()
        start = time.perf_counter()
        for i in range(n):
            shared[i % KEYS] = i
        seconds = time.perf_counter() - start
        if len(shared) != min(n, KEYS) or shared[(n - 1) % KEYS] != n - 1:
            raise RuntimeError("dict lost assignments")
        return n, seconds


def _child_set_get(shared, n, conn):
    len(shared)
    start = time.perf_counter()
    for i in range(n):
        shared[i % KEYS] = i
        if shared[i % KEYS] != i:
            raise RuntimeError("lost a write")
    conn.send(time.perf_counter() - start)


def dict_child(n):
    """Each step is one set and one get: two operations, timed in the child."""
    with CTX.Manager() as manager:
        shared = manager.dict()
        reader, writer = CTX.Pipe(duplex=False)
        child = CTX.Process(target=_child_set_get, args=(shared, n, writer))
        child.start()
        seconds = reader.recv()
        child.join()
        if child.exitcode != 0 or len(shared) != min(n, KEYS):
            raise RuntimeError("child failed")
        return 2 * n, seconds
