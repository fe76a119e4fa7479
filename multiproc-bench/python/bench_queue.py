"""Queue: small messages from 1 or 4 producers to 1 consumer, N producers to N consumers,
1 MiB messages, and a put/get ping-pong through two queues."""

import time
from multiprocessing import get_context

from bench_common import ping_pong

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


def _consume(queue, go, total):
    """Takes numbers until the first None (each producer ends with one, so each of the N
    consumers stops at exactly one of the N), then adds their sum to `total`."""
    go.wait()
    mine = 0
    while (item := queue.get()) is not None:
        mine += item
    with total.get_lock():
        total.value += mine


def scale(n, workers):
    """`workers` producers each put n // workers numbers and then None; `workers` consumers
    take them. Timed from the start signal until every consumer has ended."""
    queue = CTX.Queue()
    go = CTX.Event()
    total = CTX.Value("q", 0)
    share = n // workers
    producers = [
        CTX.Process(target=_produce, args=(queue, go, [*range(share), None]))
        for _ in range(workers)
    ]
    consumers = [CTX.Process(target=_consume, args=(queue, go, total)) for _ in range(workers)]
    children = producers + consumers
    for child in children:
        child.start()
    try:
        start = time.perf_counter()
        go.set()
        for child in consumers:
            child.join()
        seconds = time.perf_counter() - start
        for child in children:
            child.join()
            if child.exitcode != 0:
                raise RuntimeError(f"child exit code {child.exitcode}")
        if total.value != workers * share * (share - 1) // 2:
            raise RuntimeError("lost or corrupted messages")
        return workers * share, seconds
    finally:
        for child in children:
            child.kill()
            child.join()


def _echo(ping, pong, count):
    for _ in range(count):
        pong.put(ping.get())


def round_trip(n, warmup):
    ping, pong = CTX.Queue(), CTX.Queue()

    def one(i):
        ping.put(i)
        if pong.get() != i:
            raise RuntimeError("echo changed the message")

    return ping_pong(CTX, _echo, (ping, pong), n, warmup, one)
