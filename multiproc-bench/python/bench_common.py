"""What several scenarios share: round trips with an echoing child."""

import time


def ping_pong(ctx, echo, args, n, warmup, round_trip):
    """Starts a child running echo(*args, warmup + n), which must answer that many round
    trips; does `warmup` calls of round_trip(i) untimed, then times `n` more. Returns
    (n, seconds)."""
    child = ctx.Process(target=echo, args=(*args, warmup + n))
    child.start()
    try:
        for i in range(warmup):
            round_trip(i)
        start = time.perf_counter()
        for i in range(n):
            round_trip(i)
        seconds = time.perf_counter() - start
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"echo child exit code {child.exitcode}")
        return n, seconds
    finally:
        child.kill()
        child.join()
