"""Queue: small messages from 1 or 4 producers to 1 consumer, 1 MiB messages, and a
put/get ping-pong through two queues."""

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
