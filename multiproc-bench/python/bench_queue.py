"""Queue: small messages from 1 or 4 producers to 1 consumer, and 1 MiB messages."""

import time
from multiprocessing import get_context

CTX = get_context("fork")


def _produce(queue, go, items):
    go.wait()
    for item in items:
        queue.put(item)


def _run(n, producers, make_item):
    queue = CTX.Queue()
    go = CTX.Event()
    share = n // producers
    children = [
        CTX.Process(target=_produce, args=(queue, go, [make_item(i) for i in range(share)]))
        for _ in range(producers)
    ]
    for child in children:
        child.start()
    try:
        start = time.perf_counter()
        go.set()
        received = [queue.get() for _ in range(share * producers)]
        seconds = time.perf_counter() - start
        for child in children:
            child.join()
            if child.exitcode != 0:
                raise RuntimeError(f"producer exit code {child.exitcode}")
        return received, seconds
    finally:
        for child in children:
            child.kill()
            child.join()


def small(n, producers):
    received, seconds = _run(n, producers, lambda i: i)
    share = n // producers
    if sum(received) != producers * share * (share - 1) // 2:
        raise RuntimeError("lost or corrupted messages")
    return len(received), seconds


def big(n, size):
    received, seconds = _run(n, 1, lambda i: b"x" * size)
    total = sum(len(m) for m in received)
    if total != n * size:
        raise RuntimeError(f"sent {n * size} bytes, received {total}")
    return total, seconds
