"""The adapter: each line of stdin becomes one Celery task (Celery's own message format),
published persistent and confirmed (confirm_publish) to WORKER_QUEUE on WORKER_URL; it exits 0
once every one is confirmed."""

import sys

from tasks import work

for line in sys.stdin:
    work.apply_async(args=[line.rstrip("\n")], retry=False)
