"""Process start + join of a no-op target, per start method."""

import time
from multiprocessing import get_context


def _noop():
    pass


def _start_join(ctx):
    child = ctx.Process(target=_noop)
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"child exit code {child.exitcode}")


def start_join(n, method):
    ctx = get_context(method)
    _start_join(ctx)  # starts the forkserver (if any) before the clock does
    start = time.perf_counter()
    for _ in range(n):
        _start_join(ctx)
    return n, time.perf_counter() - start
