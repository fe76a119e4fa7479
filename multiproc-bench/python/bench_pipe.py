"""Pipe round trip and 1 MiB throughput between two processes (fork start method)."""

import time
from multiprocessing import get_context

CTX = get_context("fork")


def _echo(conn, count):
    for _ in range(count):
        conn.send_bytes(conn.recv_bytes())


def round_trip(n, size, warmup):
    parent, child_end = CTX.Pipe()
    child = CTX.Process(target=_echo, args=(child_end, warmup + n))
    child.start()
    try:
        message = b"x" * size
        for _ in range(warmup):
            parent.send_bytes(message)
            parent.recv_bytes()
        start = time.perf_counter()
        for _ in range(n):
            parent.send_bytes(message)
            if len(parent.recv_bytes()) != size:
                raise RuntimeError("echo changed the message")
        seconds = time.perf_counter() - start
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"echo child exit code {child.exitcode}")
        return n, seconds
    finally:
        child.kill()
        child.join()


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
