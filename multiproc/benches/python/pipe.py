"""Python's multiprocessing.Pipe on the same workload as benches/pipe.rs.

Prints one line a measurement: round trip in microseconds for 8 and 64 bytes, and
throughput of 1 MiB messages (each acknowledged by one byte) in GB/s. Median of 5 runs.
"""
import multiprocessing as mp
import statistics
import sys
import time

MIB = 1 << 20


def echo(conn, other):
    other.close()  # the inherited parent end, or recv never sees EOF (seed 000's pitfall)
    while True:
        try:
            conn.send_bytes(conn.recv_bytes())
        except EOFError:
            return


def sink(conn, other):
    other.close()
    while True:
        try:
            conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(b"k")


def roundtrip(size, n):
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b, a))
    p.start()
    b.close()
    msg = b"x" * size
    for _ in range(1000):
        a.send_bytes(msg)
        a.recv_bytes()
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            a.send_bytes(msg)
            a.recv_bytes()
        runs.append((time.perf_counter() - t) / n * 1e6)
    a.close()
    p.join()
    return statistics.median(runs)


def throughput(n):
    a, b = mp.Pipe()
    p = mp.Process(target=sink, args=(b, a))
    p.start()
    b.close()
    msg = b"x" * MIB
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            a.send_bytes(msg)
            a.recv_bytes()
        runs.append(n * MIB / (time.perf_counter() - t) / 1e9)
    a.close()
    p.join()
    return statistics.median(runs)


if __name__ == "__main__":
    mp.set_start_method("fork")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    for size in (8, 64):
        print(f"python Pipe roundtrip {size} B: {roundtrip(size, n):.2f} us")
    print(f"python Pipe 1 MiB throughput: {throughput(max(n // 20, 200)):.2f} GB/s")
