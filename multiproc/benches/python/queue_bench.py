"""Python's multiprocessing.Queue on the scenarios of benches/queue.rs, for comparison.

Run: python3 multiproc/benches/python/queue_bench.py            (unpinned)
     taskset -c 0 python3 multiproc/benches/python/queue_bench.py pingpong   (one CPU)

Each figure is the median of 5 runs; children are started (fork) and gated by an Event
before the clock starts, so process start-up is not measured.
"""
import multiprocessing as mp
import statistics
import sys
import time

N_SMALL = 200_000
N_BIG = 200
BIG = 1 << 20
N_PING = 20_000
RUNS = 5


def produce(q, gate, n, big):
    payload = b"\x07" * BIG if big else None
    gate.wait()
    for i in range(n):
        q.put(payload if big else i)


def consume(q, gate, n):
    gate.wait()
    for _ in range(n):
        q.get()


def echo(ping, pong):
    while True:
        x = ping.get()
        if x < 0:
            break
        pong.put(x)


def throughput(producers, n, big):
    """Messages (or bytes) per second from `producers` processes to this one."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    gate = ctx.Event()
    share = n // producers
    procs = [ctx.Process(target=produce, args=(q, gate, share, big)) for _ in range(producers)]
    for p in procs:
        p.start()
    t = time.perf_counter()
    gate.set()
    for _ in range(share * producers):
        q.get()
    elapsed = time.perf_counter() - t
    for p in procs:
        p.join()
    total = share * producers * (BIG if big else 1)
    return total / elapsed


def pingpong(n):
    """Seconds per put/get round trip through two queues and an echoing child."""
    ctx = mp.get_context("fork")
    ping, pong = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=echo, args=(ping, pong))
    child.start()
    ping.put(0)
    pong.get()
    t = time.perf_counter()
    for i in range(n):
        ping.put(i)
        pong.get()
    elapsed = time.perf_counter() - t
    ping.put(-1)
    child.join()
    return elapsed / n


def median(f):
    return statistics.median(f() for _ in range(RUNS))


def main():
    which = sys.argv[1:] or ["1p1c_int", "4p1c_int", "1p1c_1MiB", "pingpong"]
    for name in which:
        if name == "1p1c_int":
            print(f"python queue 1p1c int: {median(lambda: throughput(1, N_SMALL, False)) / 1e6:.3f} M msg/s")
        elif name == "4p1c_int":
            print(f"python queue 4p1c int: {median(lambda: throughput(4, N_SMALL, False)) / 1e6:.3f} M msg/s")
        elif name == "1p1c_1MiB":
            print(f"python queue 1p1c 1 MiB: {median(lambda: throughput(1, N_BIG, True)) / 1e9:.3f} GB/s")
        elif name == "pingpong":
            print(f"python queue ping-pong: {median(lambda: pingpong(N_PING)) * 1e6:.2f} us/RT")
        else:
            raise SystemExit(f"unknown scenario {name}")


if __name__ == "__main__":
    main()
