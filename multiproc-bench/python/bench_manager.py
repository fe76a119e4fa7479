"""Manager().dict(): item assignments through the proxy."""

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
