"""The Celery and RQ peers of the distributed-pool row: 2 worker processes on a Redis
broker (and result backend) that the bench started, the caller submits `n` trivial tasks
and waits for every result.

Run: `python3 bench_broker.py celery|rq REDIS_URL N`. Prints one JSON line:
{"ops": N, "seconds": T}, {"skip": "why"} when the package is missing, or {"error": ...}.
The peers are slow, so they run at most CAP tasks (the rate is per task all the same).
"""

import json
import os
import signal
import subprocess
import sys
import time

CAP = {"celery": 2000, "rq": 100}


def start_workers(argv_list, env):
    return [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for argv in argv_list
    ]


def stop_workers(workers):
    for w in workers:
        try:
            w.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 10
    for w in workers:
        try:
            w.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def run_celery(url, n):
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as e:
        return {"skip": f"celery not installed ({e}): pip install celery redis"}
    os.environ["BENCH_REDIS_URL"] = url
    import broker_tasks

    env = dict(os.environ, BENCH_REDIS_URL=url)
    workers = start_workers(
        [[sys.executable, "-m", "celery", "-A", "broker_tasks", "worker", "--concurrency", "2",
          "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
          "--loglevel", "WARNING"]],
        env,
    )
    try:
        broker_tasks.square.delay(1).get(timeout=120)  # the workers are up
        for r in [broker_tasks.square.delay(i) for i in range(50)]:
            r.get(timeout=120)
        start = time.perf_counter()
        pending = [broker_tasks.square.delay(i) for i in range(n)]
        out = [r.get(timeout=600) for r in pending]
        seconds = time.perf_counter() - start
    finally:
        stop_workers(workers)
    if out != [x * x for x in range(n)]:
        return {"error": "celery: wrong results"}
    return {"ops": n, "seconds": seconds}


def run_rq(url, n):
    try:
        from redis import Redis
        from rq import Queue
    except ImportError as e:
        return {"skip": f"rq not installed ({e}): pip install rq"}
    import broker_tasks

    conn = Redis.from_url(url)
    queue = Queue("bench", connection=conn)
    rq = [sys.executable, "-c", "from rq.cli import main; main()"]
    workers = start_workers([rq + ["worker", "-u", url, "bench"] for _ in range(2)], dict(os.environ))

    def wait_all(jobs, timeout):
        deadline = time.time() + timeout
        out = []
        for job in jobs:
            while True:
                status = job.get_status(refresh=True)
                if status == "finished":
                    out.append(job.return_value())
                    break
                if status == "failed" or time.time() > deadline:
                    raise RuntimeError(f"rq job {job.id}: {status}")
                time.sleep(0.001)
        return out

    try:
        wait_all([queue.enqueue(broker_tasks.plain_square, i) for i in range(10)], 120)
        start = time.perf_counter()
        pending = [queue.enqueue(broker_tasks.plain_square, i) for i in range(n)]
        out = wait_all(pending, 600)
        seconds = time.perf_counter() - start
    finally:
        stop_workers(workers)
    if out != [x * x for x in range(n)]:
        return {"error": "rq: wrong results"}
    return {"ops": n, "seconds": seconds}


def main():
    kind, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n = max(1, min(n, CAP[kind]))
    try:
        reply = {"celery": run_celery, "rq": run_rq}[kind](url, n)
    except Exception as e:  # reported to the bench, which marks the row failed
        reply = {"error": f"{kind}: {type(e).__name__}: {e}"}
    print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
