"""Worker handlers of the benchmark's latency rows (``--handler bench.handlers:mark_start``)."""

import os
import time

MARKS_ENV = "WORKQUEUE_BENCH_TASK_MARKS"


def mark_start(delivery):
    """Note when a task starts; a "long" task then lasts a minute (it is killed before)."""
    with open(os.environ[MARKS_ENV], "a") as f:
        f.write(f"{time.time()} {os.getpid()} {delivery.text}\n")
    if delivery.text == "long":
        time.sleep(60)
