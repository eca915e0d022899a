"""Start `celery -A tasks worker` in this process: one pool process, its node named after the
worker (two workers of one host must not share celery@host: their control queues collide)."""

import os
import sys

celery = os.path.join(os.path.dirname(sys.executable), "celery")
name = os.environ.get("WORKER_NAME", "worker")
os.execv(celery, [celery, "-A", "tasks", "worker", "--concurrency", "1", "--loglevel", "INFO",
                  "--hostname", f"{name}@%h"])
