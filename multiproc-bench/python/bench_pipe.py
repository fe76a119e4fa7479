"""Pipe round trip and 1 MiB throughput between two processes (fork start method)."""

import time
from multiprocessing import get_context

from bench_common import ping_pong

CTX = get_context("fork")


def _echo(conn, count):
    for _ in range(count):
        conn.send_bytes(conn.recv_bytes())


def round_trip(n, size, warmup):
    parent, child_end = CTX.Pipe()
    message = b"x" * size

    def one(_):
        parent.send_bytes(message)
        if len(parent.recv_bytes()) != size:
            raise RuntimeError("echo changed the message")

    return ping_pong(CTX, _echo, (child_end,), n, warmup, one)


def _sink(conn, count):
    total = 0
    for _ in range(count):
        total += len(conn.recv_bytes())
    conn.send(total)


def throughput(n, size):
    parent, child_end = CTX.Pipe()
    child = CTX.Process(target=_sink, args=(child_end, n))
    child.start()
    try:
        message = b"x" * size
        start = time.perf_counter()
        for _ in range(n):
            parent.send_bytes(message)
        received = parent.recv()
        seconds = time.perf_counter() - start
        if received != n * size:
            raise RuntimeError(f"sent {n * size} bytes, child received {received}")
        child.join()
        return n * size, seconds
    finally:
        child.kill()
        child.join()
