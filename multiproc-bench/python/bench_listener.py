"""Listener/Client round trip over an authenticated unix socket (fork start method)."""

import os
import tempfile
import time
from multiprocessing import get_context
from multiprocessing.connection import Client, Listener

CTX = get_context("fork")
AUTHKEY = b"multiproc-bench"


def _echo(address, count):
    with Client(address, authkey=AUTHKEY) as conn:
        for _ in range(count):
            conn.send_bytes(conn.recv_bytes())


def round_trip(n, size, warmup):
    with tempfile.TemporaryDirectory() as tmp:
        address = os.path.join(tmp, "s")
        with Listener(address, authkey=AUTHKEY) as listener:
            child = CTX.Process(target=_echo, args=(address, warmup + n))
            child.start()
            try:
                conn = listener.accept()
                message = b"x" * size

                def one():
                    conn.send_bytes(message)
                    if len(conn.recv_bytes()) != size:
                        raise RuntimeError("echo changed the message")

                for _ in range(warmup):
                    one()
                start = time.perf_counter()
                for _ in range(n):
                    one()
                seconds = time.perf_counter() - start
                child.join()
                if child.exitcode != 0:
                    raise RuntimeError(f"echo child exit code {child.exitcode}")
                conn.close()
                return n, seconds
            finally:
                child.kill()
                child.join()
