"""The task of the Celery and RQ peers (imported by their workers and by the caller)."""

import os

try:
    from celery import Celery

    app = Celery(
        "broker_tasks",
        broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        backend=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    app.conf.update(result_expires=600, broker_connection_retry_on_startup=True)

    @app.task
    def square(x):
        return x * x

except ImportError:  # the RQ peer needs only the plain function
    pass


def plain_square(x):
    return x * x
